# Two commands on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
SIP ?= 127.0.0.1:5060
HTTP ?= 127.0.0.1:8080
DATA ?= var
FLOWS ?= flows

.PHONY: run test bootstrap lint typecheck unit bench clean acd-native

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	$(VENV)/bin/ivr serve --sip $(SIP) --http $(HTTP) --data $(DATA) --flows $(FLOWS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	$(VENV)/bin/mypy

test: bootstrap lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

bench: bootstrap
	$(PY) bench/media_load.py

# the ACD's hot path compiled with mypyc into build/acd-native/ (never into the
# source tree); used only when asked: bench/acd_day.py --native, ivr acd simulate --native
acd-native: bootstrap
	$(PY) -m acd.native build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
