# Two commands on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
SIP ?= 127.0.0.1:5060
HTTP ?= 127.0.0.1:8080
DATA ?= var
FLOWS ?= flows

.PHONY: run test bootstrap lint typecheck unit bench clean acd-native media-native

bootstrap:
	@bash scripts/bootstrap.sh

# the media loop's hot path runs from its mypyc build (made here when missing or
# stale, ~20 s); if it cannot be built, the engine runs it as Python and says so
run: bootstrap
	@$(PY) -m media.native check >/dev/null 2>&1 || $(PY) -m media.native build \
	  || echo "make run: the native media build failed (above); the media loop runs as Python"
	$(VENV)/bin/ivr serve --sip $(SIP) --http $(HTTP) --data $(DATA) --flows $(FLOWS) \
	  $$($(PY) -m media.native check >/dev/null 2>&1 && echo --native)

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

# the media loop's hot path compiled with mypyc into build/media-native/;
# used by `make run` and by `ivr serve --native`, bench/media_load.py --native
media-native: bootstrap
	$(PY) -m media.native build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
