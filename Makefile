# The two commands of the README: `make demo` and `make test`. Both set up a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test lint format bench examples clean

# Debian's Chromium, for printing reports to PDF and the browser tests (CI runs as root;
# elsewhere run `sudo apt-get install chromium` once).
CHROMIUM := /usr/bin/chromium

setup: $(STAMP) $(CHROMIUM)

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_real_exports.py
	$(BIN)/python benchmarks/bench_analyze.py
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_grade.py
	$(BIN)/python benchmarks/bench_api.py

# The web app on the embedded SQLite store, with the simulated examples loaded on first run.
serve: setup
	$(BIN)/cytosafe serve

examples: setup
	$(BIN)/python examples/generate_cra_study.py
	$(BIN)/python examples/generate_crs_cohort.py

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
