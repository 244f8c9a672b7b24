# Two commands on a fresh machine: `make devnet` and `make test`.
# Both create the virtualenv in .venv and install every dependency first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: devnet test bench bench-all bench-storage bench-catchup bench-consensus sim soak fuzz bitcoind browser web verifier-wheel clean help

help:
	@echo "make devnet   set up, then run a local validator network with live status"
	@echo "make test     set up, then run the whole test suite"
	@echo "make bench    4-validator throughput and latency, and bundle verification (name=value lines; ~3 min)"
	@echo "make bench-storage   the Merkle log at 10M roots against pymerkle (~4 min)"
	@echo "make bench-catchup   a validator 1M roots behind rejoins, against the live rate (~3 min)"
	@echo "make bench-consensus messages, bytes and signature checks per block for n = 4, 7, 10, 16 (simulator)"
	@echo "make bench-all       all of the above, then the log, p2p and browser benchmarks"
	@echo "make sim      long simulator runs: 1000 seeds n=4 f=1, 300 seeds n=7 f=2"
	@echo "make soak     chaos soak: 4 validators + regtest bitcoind, faults and load for SOAK_SECONDS (600), then checks"
	@echo "make fuzz     long fuzz runs of every decoder and parser of outside input, counts per target"
	@echo "make web      rebuild web/verify.html, the offline browser verifier, from web/src/ (npm + esbuild)"
	@echo "make verifier-wheel  build dist/pantheon_verify-*.whl, the auditor's package (proof/ + pantheon-verify)"
	@echo "make clean    remove the virtualenv and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The auditor's wheel: stdlib build backend, nothing fetched.
verifier-wheel:
	$(PYTHON) -m pip wheel --no-index --no-deps --wheel-dir dist ./verifier

# Finds bitcoind on PATH (or $$PANTHEON_BITCOIND), else installs Bitcoin Knots into the user cache.
bitcoind: $(STAMP)
	$(BIN)/python -m devnet.bitcoind

devnet: $(STAMP) bitcoind
	$(BIN)/pantheon devnet up -n 4

# Debian's chromium and chromedriver for the browser tests (tests/test_web_*.py): installed when
# missing and running as root; otherwise nothing is done and those tests skip, saying what to install.
browser:
	@if [ "$$(id -u)" = 0 ] && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| echo "could not install chromium chromium-driver: the browser tests will skip"; fi

# The committed web/verify.html, rebuilt from web/src/ with the versions pinned in web/package-lock.json.
web:
	cd web && npm ci --no-audit --no-fund && node build.mjs

test: $(STAMP) bitcoind browser
	$(BIN)/python -m pytest -q -ra

# Benchmarks print figures (name=value lines); they are not part of the tests. BENCH_ARGS, e.g.
# `make bench BENCH_ARGS="--bitcoin --profile /tmp/prof"`, goes to `pantheon bench`.
bench: $(STAMP)
	$(BIN)/pantheon bench $(BENCH_ARGS)
	$(BIN)/python -m bench.verify_bench

bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage_scale

bench-catchup: $(STAMP)
	$(BIN)/python -m bench.catchup_bench

bench-consensus: $(STAMP)
	$(BIN)/python -m bench.consensus_scale

bench-all: bench bench-storage bench-catchup bench-consensus
	$(BIN)/python -m bench.pipeline_bench
	$(BIN)/python -m bench.log_bench
	$(BIN)/python -m bench.p2p_bench
	$(BIN)/python -m bench.web_bench

# Long fuzz runs (examples per target; the suite runs 120-150 each): only documented errors may escape.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	PANTHEON_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
		tests/test_fuzz_decoders.py tests/test_bitcoind_hostile_fuzz.py tests/test_consensus_fuzz.py

sim: $(STAMP)
	$(BIN)/pantheon sim --validators 4 --byzantine 1 --seeds 1000
	$(BIN)/pantheon sim --validators 7 --byzantine 2 --seeds 300

# Chaos soak (issue 12 section 4): exits non-zero on any violation; SOAK_SEED replays a run.
SOAK_SECONDS ?= 600
soak: $(STAMP) bitcoind
	$(BIN)/pantheon soak --seconds $(SOAK_SECONDS) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
