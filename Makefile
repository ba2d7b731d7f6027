# One command per habit. Every target sets up .venv first (from pyproject.toml), so each works on a
# fresh clone with nothing but Python 3.11+ installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-pyproject

.PHONY: setup lock artifact-check artifact-x86_64 sam-local demo demo-coco test test-stress lint format schema bench check

LOCK := requirements/lock.txt
ARTIFACT := .artifact
UV := $(ARTIFACT)/uv/bin/uv
UV_COMPILE = $(UV) pip compile --quiet --fork-strategy fewest

## The venv takes every version from the lock, so what the tests run is what the layer is built from.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Pin pyproject.toml's ranges (every extra, Python 3.11 to 3.13) into the lock, and the layer's own requirements
## (shared/requirements.in) at those versions into shared/requirements.txt for Lambda's Linux and Python 3.13.
## Run after changing a dependency; tests/unit/test_lock.py fails until you do.
## uv in a venv of its own: the lock must be writable when the dev venv cannot install (a range moved past it).
$(UV):
	$(PYTHON) -m venv $(ARTIFACT)/uv
	$(ARTIFACT)/uv/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

lock: $(UV)
	$(UV_COMPILE) pyproject.toml --all-extras --universal --python-version 3.11 -o $(LOCK)
	$(UV_COMPILE) shared/requirements.in -c $(LOCK) --python-version 3.13 --python-platform aarch64-manylinux_2_28 \
		-o shared/requirements.txt
	$(UV_COMPILE) requirements/artifact-tools.in --python-version 3.13 -o requirements/artifact-tools.txt

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

## Regenerate docs/label-format.schema.json from the models in shared/label_importer/model/label_format.py, and
## docs/ontology.schema.json and docs/data-units.schema.json (the spec files) from cli/label_importer_cli/project_spec.py.
schema: setup
	$(BIN)/python -c "import json; from label_importer.model.label_format import json_schema; \
	print(json.dumps(json_schema(), indent=2))" > docs/label-format.schema.json
	$(BIN)/python -c "import json, pathlib; from label_importer_cli.project_spec import json_schemas; \
	[pathlib.Path('docs', name).write_text(json.dumps(schema, indent=2) + '\n') for name, schema in json_schemas().items()]"

## Benchmarks (each a few minutes): Encord round trips, rows/s under 50 ms latency, CPU per label, cold start,
## validator speed and memory on 200 MB and 1 GB files. Tables print; JSON lands in bench/results/.
bench: setup
	$(BIN)/python -m bench.round_trips
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.cpu_per_label
	$(BIN)/python -m bench.cold_start
	$(BIN)/python -m bench.validator_memory
	$(BIN)/python -m bench.reader_speed

## The deployable artifact, checked as AWS would run it (a few minutes; builds are cached in .artifact/):
## `sam validate --lint`; `sam build` as deployed (arm64) with its size, native wheels and package versions
## checked; then the same template built for this host (x86_64) and every function run behind the Lambda Runtime
## Interface Emulator on Python 3.13, through the events in events/ and whole imports, read back and rolled back.
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
TOOLS := $(ARTIFACT)/venv
TOOLS_STAMP := $(TOOLS)/.installed-from-lock
EMULATOR := $(TOOLS)/lib/python3.13/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64
SAM = PATH="$(dir $(PYTHON313)):$$PATH" SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam

$(TOOLS_STAMP): requirements/artifact-tools.txt
	@test -n "$(PYTHON313)" || { echo "artifact-check needs python3.13 (Lambda's runtime): set PYTHON313"; exit 1; }
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements/artifact-tools.txt
	rm -rf $(ARTIFACT)/runtime-client
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check --target $(ARTIFACT)/runtime-client \
		-c requirements/artifact-tools.txt awslambdaric
	chmod +x $(EMULATOR)
	touch $@

artifact-check: setup $(TOOLS_STAMP)
	$(SAM) validate --lint
	$(SAM) build --build-dir $(ARTIFACT)/arm64 --cached --cache-dir $(ARTIFACT)/cache-arm64
	$(BIN)/python -m local.artifact_check $(ARTIFACT)/arm64 --architecture arm64
	$(MAKE) --no-print-directory artifact-x86_64
	$(BIN)/python -m local.artifact_check $(ARTIFACT)/x86_64 --architecture x86_64 --import-with $(PYTHON313)
	ARTIFACT_BUILD_DIR=$(CURDIR)/$(ARTIFACT)/x86_64 ARTIFACT_EMULATOR=$(CURDIR)/$(EMULATOR) \
		ARTIFACT_PYTHON=$(PYTHON313) ARTIFACT_RUNTIME_CLIENT=$(CURDIR)/$(ARTIFACT)/runtime-client \
		$(BIN)/pytest -q tests/artifact

## The same template for this host's architecture, so that its build runs here.
artifact-x86_64: $(TOOLS_STAMP)
	sed 's/Architectures: \[arm64\]/Architectures: [x86_64]/; s/BuildArchitecture: arm64/BuildArchitecture: x86_64/' \
		template.yaml > $(ARTIFACT)/template-x86_64.yaml
	$(SAM) build --template-file $(ARTIFACT)/template-x86_64.yaml --base-dir . --build-dir $(ARTIFACT)/x86_64 \
		--cached --cache-dir $(ARTIFACT)/cache-x86_64

## Opt-in, needs root: every function in a container as `sam local invoke` runs it, on a Lambda base image built
## here from Debian's packages, with events/ and ENV_FILE (events/env.json filled in from a deployed stack).
## Without root or apt-get it says why and does nothing.
ENV_FILE ?= events/env.json
sam-local: $(TOOLS_STAMP)
	@if [ "$$(id -u)" != 0 ]; then echo "sam-local skipped: it needs root (docker.io, debootstrap, dockerd)"; else \
		$(MAKE) --no-print-directory artifact-x86_64 && \
		bash local/sam_local.sh $(ARTIFACT)/x86_64 $(TOOLS)/bin/sam $(PYTHON313) $(ENV_FILE); fi

check: lint test
