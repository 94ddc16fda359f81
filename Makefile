# Two entry points (see README): `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu

.PHONY: setup book test smoke-book check-book fault-check clean

$(BIN)/rharm: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rharm)" >/dev/null
	touch $(BIN)/rharm

setup: $(BIN)/rharm

# (a) execute every chapter on the default (cpu) profile with papermill, then `jupyter-book build book`
book: setup
	$(BIN)/rharm book --profile $(PROFILE)

# (b) lint (ruff check; never reformats), then the test suite (fast tests; `-m slow` for the slow ones)
test: setup
	$(BIN)/ruff check rharm tests benchmarks
	$(BIN)/python -m pytest -q

# rerun every fault probe of issues 9 and 26 (bad input, damaged files, ownership of written paths, stale caches,
# races, Ctrl-C, disk full, permissions); ~2 minutes
fault-check: setup
	$(BIN)/python -m pytest -q -m faults -p no:cacheprovider tests/test_faults.py

# what CI builds: every chapter on the smoke profile, strict (warnings are errors)
smoke-book: setup
	$(BIN)/rharm book --profile smoke --strict

# render the committed pages exactly as a fresh clone would, strict
check-book: setup
	$(BIN)/jupyter-book build book -W --keep-going

clean:
	rm -rf _build runs
