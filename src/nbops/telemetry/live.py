"""``%telemetry --live N``: refresh the report in place every N seconds without blocking the kernel.

A daemon thread re-runs the analysis and replaces the contents of an ``ipywidgets.Output`` (outside a
kernel: the last report is simply kept). ``%telemetry --stop``, :func:`shutdown` (called by
``%unload_ext nbops``) and interpreter exit stop every refresher; a refresher also stops itself after
``max_errors`` failures in a row, saying why in its output.
"""
from __future__ import annotations

import atexit
import logging
import threading

log = logging.getLogger("nbops")
_LIVE: list["LiveRefresher"] = []
_LOCK = threading.Lock()


class LiveRefresher:
    def __init__(self, make_report, interval: float, output=None, max_errors: int = 3):
        self.make_report = make_report
        self.interval = float(interval)
        self.output = output
        self.max_errors = max_errors
        self.report = None
        self.refreshes = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbops-telemetry-live", daemon=True)

    def start(self) -> "LiveRefresher":
        with _LOCK:
            _LIVE.append(self)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _render(self, report) -> None:
        if self.output is None:
            return
        from ..display import bundle

        self.output.clear_output(wait=True)
        data = bundle(report)
        data.pop("application/vnd.jupyter.widget-view+json", None)
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def _loop(self) -> None:
        errors = 0
        while not self._stop.is_set():
            try:
                self.report = self.make_report()
                self.refreshes += 1
                self._render(self.report)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - a refresh failure must not kill the kernel's thread silently
                errors += 1
                self.error = exc
                log.warning("nbops: live telemetry refresh failed: %s", exc)
                if errors >= self.max_errors:
                    if self.output is not None:
                        self.output.outputs = ({"output_type": "stream", "name": "stderr",
                                                "text": f"live telemetry stopped after {errors} failures: {exc}\n"},)
                    break
            self._stop.wait(self.interval)
        with _LOCK:
            if self in _LIVE:
                _LIVE.remove(self)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with _LOCK:
            if self in _LIVE:
                _LIVE.remove(self)


def running() -> list[LiveRefresher]:
    with _LOCK:
        return list(_LIVE)


def shutdown() -> int:
    """Stop every live refresher; returns how many were running."""
    items = running()
    for r in items:
        r.stop()
    return len(items)


atexit.register(shutdown)
