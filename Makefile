# The README's two commands: `make demo` (set up + run the main job) and `make test` (set up + all tests).
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= offline,saliency,test
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup demo test bench clean-cache

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/aisviz demo --out aisviz-demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_engine.py

clean-cache: setup
	$(VENV)/bin/aisviz cache clear
