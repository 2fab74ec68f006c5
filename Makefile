# The README's two commands: `make dashboard` (set up + serve the dashboard) and `make test` (set up + all tests).
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= offline,saliency,app,test,rsa,sweep,timm,hub,docs
PORT   ?= 8866
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup chromium hubproxy dashboard demo check test-quick test bench clean-cache hub docs docs-serve

# CPU-only machines: `make setup TORCH=cpu` first installs torch and torchvision from PyTorch's CPU wheel index,
# instead of the default CUDA build (about 3 GB of CUDA libraries a CPU cannot use).
TORCH  ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

# pip runs without --quiet: the first install downloads a few GB, and its progress bars show it is alive.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install --progress-bar on torch torchvision --index-url $(TORCH_CPU_INDEX))
	$(PY) -m pip install --progress-bar on -e '.[$(EXTRAS)]'
	touch $@

setup: $(STAMP)

# Browser tests drive Debian's Chromium (installed here as root; never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-liberation >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium fonts-liberation"; fi; }

dashboard: setup
	$(VENV)/bin/aisviz serve --port $(PORT) --pool-size 1

demo: setup
	$(VENV)/bin/aisviz demo --out aisviz-demo

# JupyterHub's proxy (npm) for the hub's end-to-end test and `make hub`.
hubproxy:
	@test -x deploy/node_modules/.bin/configurable-http-proxy || \
	  { command -v npm >/dev/null && cd deploy && npm ci --no-audit --no-fund --loglevel=error; } || \
	  echo "the hub test needs npm (JupyterHub's proxy): it will be skipped"

# Static checks: style, the layers contract (imports point only downward) and types.
check: setup
	$(VENV)/bin/ruff check aisviz tests benchmarks tools
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pyright

# The quick tier: static checks and the unit tests that take seconds each (minutes in all on 2 cores).
test-quick: check
	$(PY) -m pytest -q tests/unit -m "not slow"

# Everything: unit, app (widgets), server, browser (Voila + Chromium), notebooks and the docs build.
test: check chromium hubproxy
	$(PY) -m pytest -q --durations=15

bench: setup
	$(PY) benchmarks/bench_engine.py

# The documentation site (mkdocs.yml): strict (every warning, broken link or cross-reference is an error) and
# offline, into site-docs/. The method's figures come from the default set, computed once into .docs-cache/.
DOCS_PORT ?= 8000
docs: setup
	$(VENV)/bin/mkdocs build --strict

docs-serve: setup
	$(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

clean-cache: setup
	$(VENV)/bin/aisviz cache clear

# A local demo JupyterHub (deploy/jupyterhub_config.py): log in with any name and the printed password; the
# shared dashboard is at /services/aisviz/, researchers start JupyterLab from /hub/home. Ctrl-C stops it.
HUB_STATE ?= .hub
HUB_PORT  ?= 8000
hub: setup
	test -x $(VENV)/bin/jupyterhub || $(PY) -m pip install --quiet -e '.[hub]'
	cd deploy && npm ci --no-audit --no-fund --loglevel=error
	test -f $(HUB_STATE)/bundles/bundle.json || $(VENV)/bin/aisviz precompute --out $(HUB_STATE)/bundles
	@pw=$${AISVIZ_HUB_PASSWORD:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(9))')}; \
	  echo "demo hub on http://127.0.0.1:$(HUB_PORT)/ - any user name, password: $$pw"; \
	  AISVIZ_HUB_STATE=$(abspath $(HUB_STATE)) AISVIZ_HUB_PASSWORD=$$pw AISVIZ_HUB_PORT=$(HUB_PORT) \
	  PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/jupyterhub -f deploy/jupyterhub_config.py
