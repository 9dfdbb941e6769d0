"""The Jupyter server extension: authenticated REST handlers under ``/nbops/api/``.

Wiring only (in the style of jupyter-resource-usage): ``jupyter-config/jupyter_server_config.d/nbops.json``
enables it, Jupyter Server finds ``nbops._jupyter_server_extension_points()`` and calls
:func:`_load_jupyter_server_extension` here. Settings are traits of :class:`nbops.server.extension.Nbops`
(``c.Nbops.tracking_uri = ...`` in ``jupyter_server_config.py``). Nothing heavy is imported until a request
needs it, so the server starts at once; ``nbops.server.cli`` (``nbops install-kernel-ext``) imports nothing
from Jupyter at all.
"""
from __future__ import annotations


def _load_jupyter_server_extension(serverapp) -> None:
    """Called by Jupyter Server once at start: read the ``Nbops`` settings and add the handlers."""
    from .extension import load

    load(serverapp)


# Jupyter Server 1.x looked for this name; 2.x prefers the underscored one above.
load_jupyter_server_extension = _load_jupyter_server_extension
