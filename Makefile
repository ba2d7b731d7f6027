# One command per habit. Every target sets up .venv first (from pyproject.toml), so each works on a
# fresh clone with nothing but Python 3.11+ installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-pyproject

.PHONY: setup demo demo-coco test test-stress lint format schema bench check

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

## The suite twice at once, two workers each: four test processes on a 2-core runner, as a busy CI machine
## runs it. Each copy has its own temp dirs, Hypothesis database and pytest cache (and every local stack its
## own ports), so the copies share nothing but the CPU. Fails if either copy fails. Logs go to a fresh
## directory (printed), or to STRESS_DIR if set.
## A command the recipe starts with & would start with Ctrl-C (SIGINT) ignored, as would every process the
## tests start; the tests that interrupt the local import need it as a terminal delivers it, hence WITH_CTRL_C.
WITH_CTRL_C = $(BIN)/python -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
	os.execvp(sys.argv[1], sys.argv[1:])'
test-stress: setup
	@dir=$${STRESS_DIR:-$$(mktemp -d "$${TMPDIR:-/tmp}/encord-label-importer-stress.XXXXXX")}; \
	echo "test-stress: two copies of the suite, logs in $$dir/<copy>/pytest.log"; \
	started=$$(date +%s); \
	for copy in 1 2; do \
		rm -rf "$$dir/$$copy"; mkdir -p "$$dir/$$copy/tmp"; \
		TMPDIR="$$dir/$$copy/tmp" HYPOTHESIS_STORAGE_DIRECTORY="$$dir/$$copy/hypothesis" \
			$(WITH_CTRL_C) $(BIN)/pytest -n 2 -q -o cache_dir="$$dir/$$copy/pytest-cache" --basetemp="$$dir/$$copy/basetemp" \
			> "$$dir/$$copy/pytest.log" 2>&1 & \
		eval pid$$copy=$$!; \
	done; \
	wait $$pid1; first=$$?; wait $$pid2; second=$$?; \
	for copy in 1 2; do \
		echo "--- copy $$copy:"; grep -E '^(FAILED|ERROR) tests/' "$$dir/$$copy/pytest.log"; tail -n 1 "$$dir/$$copy/pytest.log"; \
	done; \
	echo "test-stress: copy 1 exited $$first, copy 2 exited $$second, in $$(( $$(date +%s) - started )) s"; \
	test $$first -eq 0 && test $$second -eq 0

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate docs/label-format.schema.json from the models in shared/label_importer/model/label_format.py.
schema: setup
	$(BIN)/python -c "import json; from label_importer.model.label_format import json_schema; \
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
