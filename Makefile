# The two commands: `make run` and `make test`. Everything else is a step of those.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help run test kube images venv services clean

help:
	@echo "make run    bring up vcportal on http://127.0.0.1:8000 (embedded default)"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make kube   build the Kubernetes binaries (control plane and real node) into the cache; prints their directory"
	@echo "make images build the real nodes' images into the local registry; prints their references"

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

kube:
	@tools/kube/build.sh all

images:
	@tools/images/build.sh

run: venv
	@scripts/run.sh

test: venv
	@scripts/test.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
