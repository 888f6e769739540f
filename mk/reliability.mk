# Reliability and load (included by the Makefile).
#
#   make test-faults     the fault tests in their long form: SIGKILL of the broker, learner
#                        and workers (FAULT_ROUNDS=30 rounds each), a worker cut off from the
#                        broker, a full disk, and the broker fuzzed with FUZZ_MESSAGES messages.
#                        Their short forms (5 rounds, 10,000 messages) run inside `make test`.
#                        Root is needed for the network namespace and the small tmpfs.
#   make bench-broker    the broker under load: BENCH_WORKERS simulated workers sending 64-game
#                        batches while a learner reads; build/bench/broker.json
#
# Variables: FAULT_ROUNDS (30), FUZZ_MESSAGES (50000), BENCH_WORKERS (64), BENCH_SECONDS (20),
# BENCH_ARGS (more options of benchmarks/bench_broker.py).

FAULT_ROUNDS ?= 30
FUZZ_MESSAGES ?= 50000
BENCH_WORKERS ?= 64
BENCH_SECONDS ?= 20
BENCH_ARGS ?=
FAULT_TESTS := tests/test_faults_process.py tests/test_faults_network.py tests/test_faults_disk.py tests/test_broker_fuzz.py

.PHONY: test-faults bench-broker

test-faults: $(VENV_STAMP)
	AZGO_FAULT_ROUNDS='$(FAULT_ROUNDS)' AZGO_FUZZ_MESSAGES='$(FUZZ_MESSAGES)' $(PY) -m pytest -s $(FAULT_TESTS)

bench-broker: $(VENV_STAMP)
	@mkdir -p build/bench
	$(PY) benchmarks/bench_broker.py --workers '$(BENCH_WORKERS)' --seconds '$(BENCH_SECONDS)' \
		--out build/bench/broker.json $(BENCH_ARGS)
