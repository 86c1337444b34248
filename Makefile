# The two commands: `make run` and `make test`. Everything else is a step of those.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help run test kube images install-demo conformance venv services clean

help:
	@echo "make run    bring up vcportal on http://127.0.0.1:8000 (embedded default)"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make kube   build the Kubernetes binaries (control plane and real node) into the cache; prints their directory"
	@echo "make images build the real nodes' images into the local registry; prints their references"
	@echo "make conformance  the upstream conformance suite against the embedded host and a vcluster; writes a report by SIG"
	@echo "make install-demo  install (again: upgrade) the Helm chart into the embedded host; prints its URL and an API token"

# The run-time distributions at the versions the images hold (tools/images/lock.py), so
# the tests run what the images run on any machine, not whatever PyPI resolves that day.
$(STAMP): pyproject.toml tools/images/requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c tools/images/requirements.lock -e '.[test]'
	touch $@

venv: $(STAMP)

kube:
	@tools/kube/build.sh all

images:
	@tools/images/build.sh

conformance: venv
	@.venv/bin/python scripts/conformance.py $(CONFORMANCE_ARGS)

run: venv
	@scripts/run.sh

install-demo: venv
	@scripts/install-demo.sh

test: venv
	@scripts/test.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
