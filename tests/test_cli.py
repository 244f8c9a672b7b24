"""The ``pantheon`` entry point itself."""

import subprocess
import sys

from node.cli import main


def test_help_lists_the_program_and_exits_zero(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "pantheon" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    assert "usage: pantheon" in capsys.readouterr().out


def test_console_script_runs_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("pantheon ")
