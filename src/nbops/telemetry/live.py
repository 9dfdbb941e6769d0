"""``%telemetry --live N``: refresh the report in place every N seconds without blocking the kernel.

The refresher is :class:`nbops.display.views.LiveView` (the one live view of nbops) fed by the analysis;
this module adds only what telemetry needs: the list of running refreshers for ``%telemetry --stop``,
:func:`shutdown` (called by ``%unload_ext nbops`` and at exit), and stopping after ``max_errors`` failed
refreshes in a row, saying why in the view.
"""
from __future__ import annotations

import atexit
import logging
import threading

from ..display.views import LiveView

log = logging.getLogger("nbops")
_LIVE: list["LiveRefresher"] = []
_LOCK = threading.Lock()


class LiveRefresher(LiveView):
    """``make_report()`` every ``interval`` seconds into ``output`` (an ipywidgets Output already displayed;
    None: the view displays itself, or outside a kernel just keeps ``report``)."""

    def __init__(self, make_report, interval: float, output=None, max_errors: int = 3):
        super().__init__("nbops-telemetry-live")
        self._out = output
        self.make_report, self.interval, self.max_errors = make_report, float(interval), max_errors
        self.report = None
        self.refreshes = 0
        self.error: BaseException | None = None
        self._errors = 0

    def start(self) -> "LiveRefresher":
        self.every(self.interval, self._make)  # (every() stops a previous loop first, which unlists it)
        with _LOCK:
            _LIVE.append(self)
        return self

    def _make(self):
        try:
            report = self.make_report()
        except Exception as exc:  # noqa: BLE001 - counted; the view says why once it gives up
            self._errors += 1
            self.error = exc
            log.warning("nbops: live telemetry refresh failed: %s", exc)
            if self._errors >= self.max_errors:
                raise RuntimeError(f"stopped after {self._errors} failures: {exc}") from exc
            return None
        self._errors, self.report = 0, report
        self.refreshes += 1
        return report

    def update(self, obj) -> None:
        from ..display import in_kernel

        if self._handle is None and (self._out is not None or not in_kernel()):
            self.last, self.updates = obj, self.updates + 1
            if self._out is not None:
                self._data(obj)  # replaces what the displayed Output shows
            return
        super().update(obj)

    def stop(self, timeout: float | None = 10.0) -> None:
        super().stop(timeout)
        with _LOCK:
            if self in _LIVE:
                _LIVE.remove(self)


def running() -> list[LiveRefresher]:
    with _LOCK:
        return [r for r in _LIVE if r.running]


def shutdown() -> int:
    """Stop every live refresher; returns how many were running."""
    with _LOCK:
        items = list(_LIVE)
    for r in items:
        r.stop()
    return len(items)


atexit.register(shutdown)
