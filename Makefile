# The README, CI and newcomers call these targets verbatim.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv controlplane testbed test test-unit lint format crds catalog bench demo demo-real-node image clean golden

help:
	@echo "make demo    - build/start a local testbed, run Plumbob on it and show the results"
	@echo "make demo-real-node - helm install Plumbob on a real node (containerd, kubelet) of the testbed"
	@echo "make test    - the whole test suite (unit + integration + e2e, against the real testbed)"
	@echo "make lint    - ruff, mypy --strict, import-linter contracts"
	@echo "make bench   - benchmarks (node audit; operator scale run)"
	@echo "make crds    - regenerate crds/ from the pydantic models"
	@echo "make catalog - validate the benchmark YAML and rewrite the compiled catalog the audit loads"
	@echo "make golden  - refresh the golden files of the reports and the dashboard (review the diff)"
	@echo "make image   - build the container image (no daemon, reproducible) into build/image/"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11+"; exit 1; }
	@echo "[setup] creating $(VENV) and installing Plumbob with its test and lint tools"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . --group dev
	@touch $@

venv: $(VENV)/.installed

testbed: venv
	$(PY) tools/testbed/binaries.py
	PYTHONPATH=tools $(PY) -m testbed.nodebinaries
	PYTHONPATH=tools $(PY) -m testbed.prometheus

# what `make demo` needs: the control plane only (the real node's binaries are for tests and demo-real-node)
controlplane: venv
	$(PY) tools/testbed/binaries.py

test: venv testbed image
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check operator tests tools
	$(VENV)/bin/ruff format --check operator tests tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format operator tests tools
	$(VENV)/bin/ruff check --fix operator tests tools

crds: venv
	$(PY) -m plumbob crds --output-dir crds
	cp crds/plumbob.dev_*.yaml charts/plumbob/crds/

image: venv
	$(PY) tools/image/build.py

catalog: venv
	$(PY) -m plumbob.benchmarks.catalog

bench: venv testbed
	$(PY) tools/bench/run.py

demo: venv controlplane
	$(PY) tools/demo.py $(DEMO_ARGS)

demo-real-node: venv testbed image
	$(PY) tools/demo.py --real-node $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

golden: venv
	PLUMBOB_UPDATE_GOLDEN=1 $(PY) -m pytest -p no:cacheprovider -q tests/unit/reports
