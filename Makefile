# The README's two commands. Both build .venv from scratch when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	@# Containers and CI run as root, where Jupyter refuses to start without allow_root. Allow it in this
	@# development venv only (never in the installed package's config).
	@if [ "$$(id -u)" = 0 ] && [ ! -e $(VENV)/etc/jupyter/jupyter_server_config.json ]; then \
	  mkdir -p $(VENV)/etc/jupyter && echo '{"ServerApp": {"allow_root": true}}' > $(VENV)/etc/jupyter/jupyter_server_config.json; fi
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) tools/demo.py

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .nbops notebooks/out test-artifacts
