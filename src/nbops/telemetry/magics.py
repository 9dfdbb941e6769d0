"""``%telemetry``: parse the options, call :func:`nbops.telemetry.api.analyze`, show the report. No logic here."""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import NbopsError
from ..argtypes import number


@magics_class
class TelemetryMagics(Magics):

    @magic_arguments()
    @argument("--source", default="local", help="local (this kernel's host, the default), prometheus, or the name "
                                                "of a DataFrame variable / a CSV path.")
    @argument("--url", help="Prometheus URL (default: NBOPS_PROMETHEUS_URL).")
    @argument("--query", nargs="+", action="extend", help="PromQL (one or more, quoted) for prometheus (default: "
                                                          "node-exporter CPU and memory use per instance); metric "
                                                          "names or globs for local.")
    @argument("--last", help="Window ending now, with its unit: 30s, 15m, 1h, 2d (default: 1h for prometheus, all buffered "
                             "samples for local).")
    @argument("--start", help="Window start: ISO time, unix seconds or now-2h.")
    @argument("--end", help="Window end (default: now).")
    @argument("--step", help="Prometheus resolution, e.g. 15s (default: about 500 points per series).")
    @argument("--detector", default="auto", help="auto (ensemble; robust on the past over its warm-up), "
                                                 "ensemble, seasonal, robust, cad_ose or sr (needs nbops[alibi]).")
    @argument("--sensitivity", default="medium", choices=["low", "medium", "high"],
              help="Thresholds from the NAB benchmark: medium = best NAB standard score; low / high = half / twice "
                   "its false alarms. The report says how many alerts/day each would have raised here.")
    @argument("--direction", default="both", choices=["up", "down", "both"])
    @argument("--gap", help="Anomalies closer than this are one episode (default: 5 steps of the series).")
    @argument("--live", nargs="?", const=10.0, type=number(float, above=0), metavar="SECONDS",
              help="Refresh in place every SECONDS (default 10) without blocking; stop with %%telemetry --stop.")
    @argument("--stop", action="store_true", help="Stop every --live refresher.")
    @argument("--log", action="store_true", help="Record frame, incidents and figure to MLflow (the current "
                                                 "tracked run, else a new run of kind telemetry).")
    @argument("--alert", nargs="?", const=True, metavar="URL",
              help="Send each incident to this Alertmanager (API v2); without URL: NBOPS_ALERTMANAGER_URL. "
                   "Re-sends are the same alert; an incident that is over is resolved.")
    @argument("--on-incident", metavar="NOTEBOOK", help="Run this runbook notebook (nbops run) for each new "
                                                         "incident, with the incident as parameters.")
    @argument("-e", "--experiment", help="Experiment for --log outside a tracked cell.")
    @argument("-o", "--output", metavar="VAR", help="Also store the report in this variable.")
    @line_magic
    def telemetry(self, line: str):
        """Pull metrics, find what is abnormal, group it into incidents, and plot it.

        %telemetry                                     this host, everything sampled so far
        %telemetry --source prometheus --url http://localhost:9090 --query 'rate(node_cpu_seconds_total[1m])' --last 1h
        %telemetry --source df --detector seasonal --sensitivity high --direction up
        %telemetry --live 5          refresh every 5 s;  %telemetry --stop
        %telemetry --alert http://alertmanager:9093 --on-incident runbook.ipynb     incidents to action
        """
        from ..display import show
        from ..magics import parse
        from . import api
        from .respond import respond

        a = parse(self.telemetry, line)
        if a.stop:
            from . import live

            n = live.shutdown()
            print(f"stopped {n} live telemetry view{'s' if n != 1 else ''}")
            return None
        if a.output and not a.output.isidentifier():
            raise NbopsError(f"-o {a.output!r} is not a variable name.")
        source = a.source
        if source not in ("local", "prometheus") and source.isidentifier() and source in self.shell.user_ns:
            source = self.shell.user_ns[source]
        query = a.query if a.query is None or len(a.query) > 1 else a.query[0]
        kw = dict(query=query, detector=a.detector, sensitivity=a.sensitivity, direction=a.direction, gap=a.gap,
                  url=a.url, last=a.last, start=a.start, end=a.end, step=a.step)
        if a.live is not None:
            return self._live(source, kw, a)
        report = api.analyze(source, **kw)
        respond(report, alert=a.alert, on_incident=a.on_incident, log_run=a.log, experiment=a.experiment)
        if a.output:
            self.shell.user_ns[a.output] = report
        show(report)
        return None

    def _live(self, source, kw, a):
        from ..display import headless_reason, in_kernel, show
        from . import api, live
        from .respond import respond

        if a.live <= 0:
            raise NbopsError("--live SECONDS must be positive, e.g. --live 5.")

        def make():
            return respond(api.analyze(source, **kw), alert=a.alert, on_incident=a.on_incident,
                           log_new=False, experiment=a.experiment)

        first = make()  # fail now, in the cell, if the options are wrong
        output = None
        if in_kernel() and headless_reason() is None:  # a person watches: refresh a widget in place
            import ipywidgets as w

            output = w.Output()
            from IPython.display import display

            display(output)
        else:
            show(first)
        refresher = live.LiveRefresher(make, a.live, output).start()
        if a.output:
            self.shell.user_ns[a.output] = refresher
        return None
