"""``pantheon sim``: summary line, exit status, replay command; and the simulator
catching a deliberately broken protocol (certificates at quorum f+1)."""

from __future__ import annotations

import re

from consensus.sim.cli import main
from consensus.sim.faults import parse_fault_mix
from consensus.sim.runner import SimConfig, run_seed

SUMMARY = re.compile(
    r"^seeds=(\d+) violations=(\d+) finalized=(\d+) median_finality_ms=\S+ p99_finality_ms=\S+ .*sec_per_seed=\S+$",
    re.MULTILINE,
)


def _summary(text: str) -> tuple[int, int, int]:
    match = SUMMARY.search(text)
    assert match, text
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def test_smoke_four_validators_one_byzantine_twenty_seeds(capsys):
    status = main(["--validators", "4", "--byzantine", "1", "--seeds", "20"])
    out = capsys.readouterr().out
    seeds, violations, finalized = _summary(out)
    assert (status, seeds, violations) == (0, 20, 0), out
    assert finalized > 20


def test_smoke_seven_validators_two_byzantine_five_seeds(capsys):
    status = main(["sim", "--validators", "7", "--byzantine", "2", "--seeds", "5", "--seed-start", "100"])
    out = capsys.readouterr().out
    seeds, violations, finalized = _summary(out)
    assert (status, seeds, violations) == (0, 5, 0), out
    assert finalized > 5


def test_clean_network_flag_runs_without_faults(capsys):
    status = main(["--seeds", "2", "--faults", "none", "--horizon-ms", "3000", "--verbose"])
    out = capsys.readouterr().out
    assert status == 0
    assert len(re.findall(r"^seed=\d+ ok ", out, re.MULTILINE)) == 2
    assert "byzantine=-" in out


def test_unknown_fault_kind_is_a_usage_error(capsys):
    assert main(["--seeds", "1", "--faults", "drop,meteor"]) == 2
    assert "meteor" in capsys.readouterr().err


def test_too_many_byzantine_is_a_usage_error(capsys):
    assert main(["--validators", "4", "--byzantine", "2", "--seeds", "1"]) == 2
    assert "byzantine" in capsys.readouterr().err


def test_broken_quorum_fails_with_seed_and_replay_command(capsys):
    status = main(["--seeds", "3", "--quorum-override", "2", "--behaviours", "equivocate"])
    out = capsys.readouterr().out
    assert status == 1
    _, violations, _ = _summary(out)
    assert violations > 0
    failed = re.search(r"FAILED seed=(\d+): invariant (\S+)", out)
    assert failed, out
    replay = re.search(r"replay: (pantheon sim .*)$", out, re.MULTILINE)
    assert replay, out
    command = replay.group(1)
    assert f"--seed-start {failed.group(1)}" in command and "--seeds 1" in command
    assert "--quorum-override 2" in command
    # The printed command replays exactly that failure.
    replayed = main(command.split()[1:])
    again = capsys.readouterr().out
    assert replayed == 1
    assert f"FAILED seed={failed.group(1)}: invariant {failed.group(2)}" in again


def test_quorum_of_f_plus_one_lets_honest_nodes_fork_and_the_checker_sees_it():
    """With the certificate check off, the fork itself (two blocks at one height) must show."""
    config = SimConfig(
        quorum_override=2,
        faults=parse_fault_mix("all"),
        behaviours=("equivocate",),
        invariants=("agreement", "prefix", "unique-roots", "honest-votes", "honest-evidence"),
    )
    found = [run_seed(config, seed).violation for seed in range(10)]
    assert any(v is not None and v.invariant == "agreement" for v in found), found
