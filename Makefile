# Two commands for a newcomer: `make demo` and `make test`. Both create or refresh .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KDEDGE_DATA ?= $(abspath ../shared/data)
export KDEDGE_DATA

.PHONY: demo test test-all fuzz lint tables venv edge clean

venv: $(VENV)/.installed

# Re-installs whenever pyproject.toml changes; editable install so the code you edit is what runs.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

# The edge-format converters and runtimes (ExecuTorch, LiteRT, Core ML, NCNN, MNN, OpenCV, tract: ~1.6 GB; see
# docs/formats.md). Not in `venv`: a developer who never exports to them keeps a lean .venv and their
# tests skip; .ci/run calls `make edge test`, and in CI the edge tests fail rather than skip without them.
edge: $(VENV)/.edge-installed

# pyproject's `edge` extra, spelled out: installing the packages alone resolves in ~30 s, while
# `pip install -e ".[dev,edge]"` re-resolves the project too and backtracks through old timm wheels.
EDGE_REQUIREMENTS = $(shell $(BIN)/python -c "import tomllib; x = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; print(' '.join(r for k in ('executorch', 'litert-convert', 'coreml', 'ncnn-convert', 'mnn', 'consumers') for r in x[k]))")

# The edge converters (litert-torch -> transformers, executorch) accept many torch versions: without the
# venv's own torch pinned, pip's resolver backtracks through old torch wheels for many minutes.
$(VENV)/.edge-installed: $(VENV)/.installed
	$(BIN)/python -m pip freeze | grep -iE '^(torch|torchvision)==' > $(VENV)/torch-pins.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -c $(VENV)/torch-pins.txt $(EDGE_REQUIREMENTS)
	touch $@

demo: venv
	$(BIN)/kdedge distill quickstart_mnist --out runs/demo --force

# The suite without the checks marked slow (tests/conftest.py SLOW, @pytest.mark.slow); test-all runs them too.
# `make test` runs one pytest worker per core (pytest-xdist), each test file whole in one worker (its module
# fixtures built once) and each worker's torch on one thread (tests/conftest.py); TEST_WORKERS=0 runs serially.
# test-all stays serial: its chaos and timeout checks time real processes against a deadline.
TEST_WORKERS ?= auto
test: venv
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-all: venv
	$(BIN)/python -m pytest -q

# property-based recipe fuzzing with a large budget (make test runs 40 examples per property)
fuzz: venv
	KDEDGE_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/test_fuzz_recipes.py

# every published table (docs/results.md, README's glance) from bench/results/*.json (--check: only report)
tables: venv
	$(BIN)/python bench/tables.py

lint: venv
	$(BIN)/ruff check kdedge tests bench
	$(BIN)/ruff format --check kdedge tests bench

clean:
	rm -rf runs build dist *.egg-info
