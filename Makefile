# The README's commands. Each creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench chaos fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m client.demo demo-out

# Tests wait on Temporal, stores and fleets more than on the CPU: three pytest workers (one test file each at a time,
# each with its own dev server) keep the suite within 15 minutes on 2 cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Every benchmark prints one JSON object; bench/plan_overhead.py is the plan's orchestration overhead (10 no-op steps).
bench: $(STAMP)
	for b in bench/*.py; do case $$b in */__init__.py|*/common.py|*/noop_extension.py) continue;; esac; \
		$(BIN)/python $$b || exit 1; done

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.harness --trials $${CHAOS_TRIALS:-50} --seed $${CHAOS_SEED:-7}

# The hypothesis fuzzers (tests/**/test_fuzz_*.py) with many more examples than CI's; FUZZ_EXAMPLES=N to change.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest -q -p no:cacheprovider $$(find tests -name 'test_fuzz_*.py' | sort)

clean:
	rm -rf $(VENV) build *.egg-info
