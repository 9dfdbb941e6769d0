"""Every matplotlib figure a tracked cell drew, including those it showed and closed.

In Jupyter the inline backend's ``plt.show()`` displays the open figures and closes them (so do ``plt.close``
and papermill's kernels); a figure looked up after the cell is gone. While the cell runs, the two ways pyplot
forgets a figure -- ``Gcf.destroy`` (one figure) and ``Gcf.destroy_all`` -- are wrapped to keep a reference to
the figure being closed; the originals are put back when the cell ends. Nothing is drawn, shown or closed
differently: the user sees what they would without nbops. If the cell itself imports matplotlib, the wrap is
applied the moment ``matplotlib._pylab_helpers`` is imported (a light import hook, removed with the rest).
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from ..importhook import OnImport

_HELPERS = "matplotlib._pylab_helpers"
log = logging.getLogger("nbops")


class FigureCatcher:
    """``with FigureCatcher() as figs: ...`` then ``figs.drawn()``: the figures made while inside, in the order
    they were closed or (for those left open) numbered; figures open before are not counted."""

    def __init__(self):
        self._before: set[int] = set()
        self._closed: list[tuple[int, Any]] = []   # (figure number, Figure) as closed
        self._gcf = None
        self._saved: dict[str, Any] = {}
        self._hook: OnImport | None = None

    def __enter__(self) -> "FigureCatcher":
        try:
            helpers = sys.modules.get(_HELPERS)
            if helpers is not None:
                self._before = {id(m.canvas.figure) for m in helpers.Gcf.get_all_fig_managers()}
                self._wrap(helpers)
            else:
                self._hook = OnImport(_HELPERS, self._wrap)
                sys.meta_path.insert(0, self._hook)
        except Exception as exc:  # noqa: BLE001 - an unusual matplotlib: only the figures left open are logged
            log.warning("nbops: cannot follow the cell's figures: %s", exc)
            self.__exit__(None, None, None)
        return self

    def __exit__(self, *exc) -> bool:
        if self._hook is not None and self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        if self._gcf is not None:
            for name, raw in self._saved.items():
                setattr(self._gcf, name, raw)
        self._gcf, self._saved = None, {}
        return False

    def _wrap(self, helpers) -> None:
        if self._gcf is not None:
            return
        gcf = helpers.Gcf
        self._gcf = gcf
        self._saved = {name: gcf.__dict__[name] for name in ("destroy", "destroy_all") if name in gcf.__dict__}
        destroy, destroy_all = gcf.destroy, gcf.destroy_all   # bound to the class
        keep = self._keep

        def wrapped_destroy(cls, num):
            try:
                manager = num if hasattr(num, "canvas") else cls.figs.get(num)
                if manager is not None:
                    keep(manager)
            except Exception:  # noqa: BLE001 - never stand between the user and their close
                pass
            return destroy(num)

        def wrapped_destroy_all(cls):
            try:
                for manager in list(cls.figs.values()):
                    keep(manager)
            except Exception:  # noqa: BLE001
                pass
            return destroy_all()

        gcf.destroy = classmethod(wrapped_destroy)
        gcf.destroy_all = classmethod(wrapped_destroy_all)

    def _keep(self, manager) -> None:
        fig = manager.canvas.figure
        if id(fig) not in self._before and all(f is not fig for _, f in self._closed):
            self._closed.append((manager.num, fig))

    def drawn(self) -> list[tuple[int, Any]]:
        """(figure number, Figure) of each figure the cell made: closed ones, then those still open; each once."""
        out = list(self._closed)
        helpers = sys.modules.get(_HELPERS)
        if helpers is not None:
            for m in sorted(helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num):
                fig = m.canvas.figure
                if id(fig) not in self._before and all(f is not fig for _, f in out):
                    out.append((m.num, fig))
        return [(n, f) for n, f in out if f.axes or f.artists or f.images or f.texts or f.patches or f.lines]


