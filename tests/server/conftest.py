"""Jupyter Server's own pytest fixtures (``jp_fetch``, ``jp_serverapp``, ...) for the tests in this folder only.

``pytest_plugins`` is only honoured in the rootdir conftest, which is shared; importing the plugin's fixtures
and hooks here scopes them (and the plugin's autouse event-loop fixture) to ``tests/server/``.
"""
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
