# The two commands of the README: `make demo` and `make test`. Both set up a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the test suite passed with (make lock refreshes it from pyproject.toml's
# lower bounds); make setup installs from it, so every machine runs what CI ran.
LOCK := requirements.lock

.PHONY: setup lock demo serve test test-newest lint format bench examples clean

# Debian's Chromium, for printing reports to PDF and the browser tests (CI runs as root;
# elsewhere run `sudo apt-get install chromium` once).
CHROMIUM := /usr/bin/chromium
# Poppler's pdftotext, for the test that reads the printed example report page by page.
PDFTOTEXT := /usr/bin/pdftotext

setup: $(STAMP) $(CHROMIUM) $(PDFTOTEXT)

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

$(PDFTOTEXT):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends poppler-utils

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Resolve the newest versions pyproject.toml allows (Python 3.11, Linux) into the lock.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --upgrade --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --annotation-style line -o $(LOCK)

# The whole suite on whatever versions pip picks today within the lower bounds (not the
# lock): how a newcomer's `pip install cytosafe` fares. Uses its own venv.
test-newest: $(CHROMIUM) $(PDFTOTEXT)
	rm -rf .venv-newest && $(PYTHON) -m venv .venv-newest
	.venv-newest/bin/python -m pip install --quiet --upgrade pip
	.venv-newest/bin/python -m pip install --quiet -e '.[dev]'
	.venv-newest/bin/python -m pytest -q $(PYTEST_PARALLEL)

demo: setup
	$(BIN)/cytosafe quantify examples/cra-study/msd/plate_*.csv --sample-map examples/cra-study/msd/samples.csv --study-id CRA-EX-001 --out out/demo/msd
	$(BIN)/cytosafe mabel --potency out/demo/msd/potency.csv --treatment TA-1 --out out/demo/mabel
	$(BIN)/cytosafe simulate examples/translate/ta1_regimens.toml --potency out/demo/msd/potency.csv --out out/demo/simulate
	$(BIN)/cytosafe quantify examples/cra-study/luminex/plate_*.csv --sample-map examples/cra-study/luminex/samples.csv --study-id CRA-EX-001 --out out/demo/luminex
	$(BIN)/cytosafe analyze examples/cra-study/study.toml --out out/demo/analysis --pdf
	$(BIN)/cytosafe grade examples/crs-cohort/observations.csv --scale astct2019 --scale lee2014 --scale ctcae5 --scale penn --scale mskcc --scale cartox --out out/demo/crs
	$(BIN)/cytosafe recommend --modality cd3_bispecific --target CD20 --out out/demo/recommend.html
	$(BIN)/cytosafe aop map --responses out/demo/analysis/responses.csv --timeline out/demo/crs/timeline.csv --out out/demo/aop
	@echo "reports: out/demo/*/report.html, out/demo/recommend.html, out/demo/aop/crs_aop_evidence.html"

LINTED := $(wildcard src tests benchmarks examples)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: setup
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

# Whole test files spread over every core (pytest-xdist; --dist loadfile keeps a file's
# module fixtures, servers and PostgreSQL cluster in one worker).
PYTEST_PARALLEL := -n auto --dist loadfile

test: lint
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# One table of fit, grade and simulate against the baselines a user would write (CPU time,
# min/median of 3 runs, parity, peak memory); then the end-to-end and service benchmarks.
bench: setup
	$(BIN)/python benchmarks/run_all.py
	$(BIN)/python benchmarks/bench_quantify.py
	$(BIN)/python benchmarks/bench_real_exports.py
	$(BIN)/python benchmarks/bench_analyze.py
	$(BIN)/python benchmarks/bench_api.py

# The web app on the embedded SQLite store, with the simulated examples loaded on first run.
serve: setup
	$(BIN)/cytosafe serve

examples: setup
	$(BIN)/python examples/generate_cra_study.py
	$(BIN)/python examples/generate_crs_cohort.py

clean:
	rm -rf $(VENV) .venv-newest out build *.egg-info src/*.egg-info
