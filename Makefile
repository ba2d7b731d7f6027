# One command per habit. Every target sets up .venv first (from pyproject.toml), so each works on a
# fresh clone with nothing but Python 3.11+ installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-pyproject

.PHONY: setup demo demo-coco test lint format schema bench check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The whole pipeline on this machine: moto + fake Encord, a few hundred labelled images, a job report.
demo: setup
	$(BIN)/python -m local.demo

## The same with a COCO instances file: 1000 images, 5000 annotations.
demo-coco: setup
	$(BIN)/python -m local.demo --coco --images 1000

## Unit and integration tests (what CI runs).
test: setup
	$(BIN)/pytest -n auto

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate docs/label-format.schema.json from the models in shared/label_importer/label_format.py.
schema: setup
	$(BIN)/python -c "import json; from label_importer.label_format import json_schema; \
	print(json.dumps(json_schema(), indent=2))" > docs/label-format.schema.json

## Benchmarks (each a few minutes): Encord round trips, rows/s under 50 ms latency, CPU per label, cold start,
## validator speed and memory on 200 MB and 1 GB files. Tables print; JSON lands in bench/results/.
bench: setup
	$(BIN)/python -m bench.round_trips
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.cpu_per_label
	$(BIN)/python -m bench.cold_start
	$(BIN)/python -m bench.validator_memory

check: lint test
