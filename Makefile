# `make verify` and `make test` set up everything they need on a fresh machine (Python 3.11, pip), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: verify test lint os-deps format clean mutation mutmut bench

# --- the environment ----------------------------------------------------------------------------------------
# pyproject.toml declares ranges; constraints.txt pins the exact versions the project is tested with, so a
# fresh .venv is the same everywhere. Either file changing re-runs the install.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and on its own: the local CPU wheel, not a multi-GB CUDA build pulled by a dependency
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# --- the OS packages of the rendering tests --------------------------------------------------------------
# Each program the rendering tests call, with the Debian package that brings it. Only the missing ones are
# installed, through apt-get (as root, or with sudo where it needs no password). Where that is impossible
# (no apt-get, no root), the command to run is printed and the tests still run: those that need a missing
# program fail and say what to install.
OS_TOOLS := pdflatex:texlive-latex-base latexmk:latexmk pdftoppm:poppler-utils pdftotext:poppler-utils \
            pdfinfo:poppler-utils pdffonts:poppler-utils chromium:chromium dot:graphviz \
            rsvg-convert:librsvg2-bin

os-deps:
	@missing=""; \
	for pair in $(OS_TOOLS); do \
	    tool=$${pair%%:*}; pkg=$${pair#*:}; \
	    if ! command -v $$tool >/dev/null 2>&1; then \
	        case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg" ;; esac; \
	    fi; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	install="apt-get install -y --no-install-recommends$$missing"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else sudo="none"; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || [ "$$sudo" = none ]; then \
	    echo "make: the rendering tests need$$missing; install them with:" >&2; \
	    echo "    sudo apt-get update && sudo $$install" >&2; \
	    exit 0; \
	fi; \
	echo "make: installing$$missing (the rendering tests' programs)"; \
	$$sudo apt-get update -qq || echo "make: apt-get update failed; trying the package lists already here" >&2; \
	$$sudo env DEBIAN_FRONTEND=noninteractive $$install -qq >/dev/null \
	    || echo "make: could not install$$missing; the rendering tests will fail until: $${sudo:+$$sudo }$$install" >&2

# --- commands -----------------------------------------------------------------------------------------------
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

# Lint, then the OS packages of the rendering tests, then the tests, one pytest-xdist worker per core, in a
# random order (pytest-randomly; the run ends with its seed). One torch thread each: the tests' tensors are
# tiny and thread start-up dominates on a small machine.
test: lint os-deps
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto -p randomly

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache *.egg-info
