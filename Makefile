# layerleak: make demo (install + scan the bundled demo image), make test (install + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := fixtures/out/demo-oci

.PHONY: install system-deps demo test lint format bench bench-baseline bench-sweep fixtures clean screenshots dist

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's docker.io and docker-registry for the registry and daemon tests (root only;
# without them those tests skip, saying why).
system-deps:
	bash scripts/system-deps.sh

fixtures: install
	$(PY) -m fixtures fixtures/out

# Scan the demo image; exit status 1 (findings at or above --fail-on) is the expected outcome.
demo: install
	$(PY) -m fixtures fixtures/out --only demo
	$(VENV)/bin/layerleak scan --format table oci:$(DEMO); status=$$?; \
	  if [ $$status -gt 1 ]; then exit $$status; fi

# The README's picture of the HTML report of the demo image (needs Debian's chromium).
screenshots: install
	PYTHONPATH=. $(PY) scripts/screenshot_report.py docs/report.png

# The suite includes tests/packaging: it builds the sdist and wheel once, installs the wheel
# into a fresh venv outside the checkout and smoke-tests it, and runs the GitHub Action's steps.
test: install system-deps
	$(VENV)/bin/pytest -q

# sdist and wheel in dist/, as a release uploads them, checked by twine.
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf fixtures/out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Benchmark (not a test): builds a >= 1.5 GB image from this machine's files once, then
# measures floor, cold scan, warm re-scan and trivy (when installed) in one run.
bench: install
	$(PY) -m bench.run

# Record the findings the benchmark's cold scans must keep, from the code before a change:
# CODE=DIR runs the source tree in DIR (e.g. `git archive main | tar -x -C DIR`) instead.
bench-baseline: install
	$(PY) -m bench.run --record-baseline $(if $(CODE),--code $(CODE))

# Sweep benchmark (not a test): a fleet of images sharing base layers, scanned with 1 and 2
# local workers, through a local Dask cluster and through the directory and Redis caches.
bench-sweep: install
	$(PY) -m bench.sweep
