# Parcours — local workflow. Every target installs what it needs first.
PY := .venv/bin/python
STACK := $(PY) deploy/local/stack.py

.PHONY: install up down status demo test test-long test-faults test-browser screenshots unit lint typecheck bench clean

install:            ## virtualenv, Kafka jars, PostgreSQL (only what is missing)
	@bash deploy/local/install.sh

up: install         ## start PostgreSQL, Kafka, the SMTP sink and every service (WORKERS=2: two processors and email senders)
	@PARCOURS_STACK_WORKERS=$(WORKERS) $(STACK) up

down:               ## stop everything make up started
	@$(STACK) down

status:             ## one line per process: pid, readiness, log
	@$(STACK) status

demo: up            ## the seed scenario end to end on the local stack
	@$(PY) deploy/local/demo.py

lint: install
	@.venv/bin/ruff check .
	@.venv/bin/mypy shared/domain

unit: install       ## pure tests only, no services needed
	@.venv/bin/pytest -q tests/unit

test: up lint       ## the whole suite on real services
	@.venv/bin/pytest -q

test-long: up      ## the checks marked long, which CI leaves out (none at the moment)
	@.venv/bin/pytest -q -o addopts="" -m long

test-faults: up     ## every fault scenario under load, each ended by parcours reconcile (~10 min)
	@.venv/bin/pytest -q -s -o addopts="" tests/faults

test-browser:       ## the console and the preference page in headless Chromium (installs chromium first)
	@PARCOURS_BROWSER=1 bash deploy/local/install.sh
	@$(STACK) up
	@.venv/bin/pytest -q -o addopts="" -m browser

screenshots:        ## the console's browser tests, saving each page into docs/console/ (README)
	@PARCOURS_BROWSER=1 bash deploy/local/install.sh
	@$(STACK) up
	@PARCOURS_SCREENSHOTS=1 .venv/bin/pytest -q -o addopts="" tests/integration/test_console*.py tests/integration/test_demo.py

bench: up           ## benchmarks beside their baselines (load on 127.0.0.1 only)
	@$(PY) -m bench

clean: down         ## remove run data (databases, topics, logs)
	rm -rf .run
