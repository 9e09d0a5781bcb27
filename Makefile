# `make verify` and `make test` set up everything they need on a fresh machine (Python 3.11, pip).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: verify test lint format clean mutation mutmut bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and on its own: the local CPU wheel, not a multi-GB CUDA build pulled by a dependency
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

verify: $(STAMP)
	$(VENV)/bin/lmspec verify

# Mutation testing of impl/ (docs/mutation.md): every mutant through `lmspec verify`, two at a time.
mutation: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/lmspec mutate --jobs 2 --json build/mutation.json

# mutmut 3 over spec/ops.py and impl/, file by file against each file's tests (docs/mutmut.md): about 50 min.
mutmut: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/mutmut/run.py --jobs 2

# Speed and scale (docs/bench.md): prints the figures the README quotes, and writes them as JSON.
bench: $(STAMP)
	$(VENV)/bin/lmspec bench --json build/bench.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# One torch thread: the tests' tensors are tiny and thread start-up dominates on a small machine.
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache *.egg-info
