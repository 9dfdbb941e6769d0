"""Incidents to the on-call route: the Prometheus Alertmanager API v2 (``POST /api/v2/alerts``).

Every incident of a report becomes one alert:

- labels (its identity, frozen the first time it is sent so a re-send is the same alert): ``alertname=
  "NbopsIncident"``, ``incident`` (the ledger's stable key), ``instance`` (the incident's instance / host label,
  else the source), ``host`` / ``job`` when the data has them, ``metric`` (the lead metric, the one that went
  abnormal first), ``severity`` (``critical`` for a peak score >= 0.9, ``warning`` >= 0.7, else ``info``),
  ``source``;
- annotations: ``summary``, ``metrics`` involved, ``series``, ``points``, ``peak_score``, ``lead``, ``start`` /
  ``end`` of the anomalous span, ``run`` (``runs:/<id>`` of the MLflow run holding the evidence) and ``run_url``
  (when the store is a server; also the alert's ``generatorURL``), ``runbook_run`` once a runbook ran;
- ``startsAt`` = the incident's start. An incident still going on has no ``endsAt``: Alertmanager resolves it
  after its ``resolve_timeout`` unless it is sent again (``%telemetry --live`` re-sends it at every refresh).
  An incident that is over gets ``endsAt`` so Alertmanager resolves it: its end, when nbops sent it while it was
  going on; when it was first seen already over (history, or found late), ``endsAt`` is at least ``first sent +
  min_firing`` (``NBOPS_ALERT_MIN_FIRING``, default 5m) -- Alertmanager never notifies an alert whose first
  sight is resolved, so the on-call gets "firing" then "resolved" instead of nothing.

URL: ``url=`` / ``--alert URL``, else ``NBOPS_ALERTMANAGER_URL``. Auth: ``NBOPS_ALERTMANAGER_TOKEN`` (bearer),
else ``NBOPS_ALERTMANAGER_USER`` + ``NBOPS_ALERTMANAGER_PASSWORD`` (basic). An Alertmanager that does not
answer or refuses is an :class:`AlertResult` with ``error`` set (one line, shown with the report); the incidents
are still in the report and its run.
"""
from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import dataclass, field

from ..errors import TelemetryError

log = logging.getLogger("nbops")
ENV_URL = "NBOPS_ALERTMANAGER_URL"
ENV_MIN_FIRING = "NBOPS_ALERT_MIN_FIRING"
ALERTNAME = "NbopsIncident"
DEFAULT_MIN_FIRING = 300.0


class AlertError(TelemetryError):
    """Alertmanager could not be reached or refused the alerts (``url`` says which)."""


def resolve_url(url: str | None) -> str:
    url = url or os.environ.get(ENV_URL)
    if not url:
        raise AlertError(f"No Alertmanager URL: pass --alert http://host:9093 (url=...) or set {ENV_URL}.")
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def severity(peak_score: float) -> str:
    return "critical" if peak_score >= 0.9 else "warning" if peak_score >= 0.7 else "info"


def _auth_kwargs() -> dict:
    token = os.environ.get("NBOPS_ALERTMANAGER_TOKEN")
    if token:
        return {"headers": {"Authorization": f"Bearer {token}"}}
    user = os.environ.get("NBOPS_ALERTMANAGER_USER")
    if user:
        return {"auth": (user, os.environ.get("NBOPS_ALERTMANAGER_PASSWORD", ""))}
    return {}


@dataclass
class AlertResult:
    """What one send did: ``alerts`` (the payload), ``firing`` / ``resolved`` counts, ``error`` (one line)."""
    url: str
    alerts: list = field(default_factory=list)
    firing: int = 0
    resolved: int = 0
    new: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.error:
            return self.error
        if not self.alerts:
            return f"Alertmanager {self.url}: no incidents to send"
        return (f"Alertmanager {self.url}: {len(self.alerts)} incident alert{'s' if len(self.alerts) != 1 else ''} "
                f"sent ({self.firing} ongoing, {self.resolved} over: endsAt set; {self.new} new)")

    def __repr__(self) -> str:
        return self.line()

    def _repr_html_(self) -> str:
        color = "#cf222e" if self.error else "#57606a"
        return f"<p style='color:{color}'>{html.escape(self.line())}</p>"


def build(report, incident, entry: dict, now: float, min_firing: float, run_id: str | None = None,
          run_url: str | None = None) -> tuple[dict, bool]:
    """The postable alert for one incident and whether it is over. ``entry``: what the ledger knows of its sends
    to this Alertmanager (frozen ``labels``, ``first_sent``, ``sent_ongoing``) plus ``run_id`` / ``run_url`` /
    ``runbook``; it is updated in place with the labels and the first send."""
    from .grouping import GROUP_BY
    from .lifecycle import epoch, iso, lead_metric, lifecycle

    key = report.keys[incident.id]
    labels = entry.get("labels")
    if not labels:
        src = str(report.source)
        labels = {"alertname": ALERTNAME, "incident": key,
                  "instance": incident.labels.get("instance") or incident.labels.get("host") or src,
                  "metric": lead_metric(incident), "severity": severity(incident.peak_score),
                  "source": src if len(src) <= 200 else "..." + src[-197:]}
        labels.update({k: str(incident.labels[k]) for k in GROUP_BY if k in incident.labels and k != "instance"})
        entry["labels"] = labels
    done, last_bad = lifecycle(report, incident)
    first = entry.setdefault("first_sent", now)
    if not done:
        entry["sent_ongoing"] = True
    start, end = epoch(incident.start), last_bad
    host = labels.get("host") or labels["instance"]
    summary = (f"{lead_metric(incident)} abnormal on {host} from {iso(start)} "
               + (f"to {iso(end)}" if done else "(ongoing)")
               + f": {len(incident.metrics)} metric{'s' if len(incident.metrics) != 1 else ''}, {incident.points} "
               f"anomalous points, peak score {incident.peak_score:.2f}")
    ann = {"summary": summary, "metrics": ", ".join(incident.metrics), "series": ", ".join(incident.series)[:2000],
           "lead": incident.lead, "points": str(incident.points), "peak_score": f"{incident.peak_score:.3f}",
           "start": iso(start), "end": iso(end) if done else "ongoing"}
    run_id = run_id or entry.get("run_id")
    if run_id:
        ann["run"] = f"runs:/{run_id}"
    run_url = run_url or entry.get("run_url")
    if run_url:
        ann["run_url"] = run_url
    if entry.get("runbook"):
        rb = entry["runbook"]
        ann["runbook_run"] = f"{rb.get('status')} runs:/{rb.get('run_id')}"
    alert = {"labels": labels, "annotations": ann, "startsAt": iso(start)}
    if run_url and run_url.startswith(("http://", "https://")):
        alert["generatorURL"] = run_url
    if done:
        ends = max(end, start + 1.0)
        if not entry.get("sent_ongoing"):
            ends = max(ends, first + min_firing)
        alert["endsAt"] = iso(ends)
    return alert, done


def send(report, url: str | None = None, *, min_firing: float | None = None, timeout: float = 10.0,
         ledger=None, run_id: str | None = None, run_url: str | None = None) -> AlertResult:
    """Send every incident of ``report`` to Alertmanager (one POST). Never raises for the network: a failure is
    ``AlertResult.error``; a missing URL raises :class:`AlertError`."""
    import requests

    from .lifecycle import Ledger
    from .timeparse import duration

    url = resolve_url(url)
    if min_firing is None:
        min_firing = duration(os.environ.get(ENV_MIN_FIRING, DEFAULT_MIN_FIRING), ENV_MIN_FIRING)
    ledger = ledger or Ledger()
    if not getattr(report, "keys", None) or set(report.keys) != {i.id for i in report.incidents}:
        ledger.observe(report)
    result = AlertResult(url, new=len(getattr(report, "new", [])))
    if not report.incidents:
        return result
    now = time.time()

    def fn(data):
        alerts = []
        for inc in report.incidents:
            entry = data["incidents"][report.keys[inc.id]]
            sent = entry.setdefault("sent", {}).setdefault(url, {})
            alert, done = build(report, inc, sent | {k: entry[k] for k in ("run_id", "run_url", "runbook")
                                                     if entry.get(k)}, now, min_firing, run_id, run_url)
            # keep what the build froze (labels, first send, whether it was sent while going on)
            sent.update(labels=alert["labels"], first_sent=sent.get("first_sent", now),
                        sent_ongoing=sent.get("sent_ongoing", False) or not done, last_sent=now,
                        resolved=done)
            if run_id and not entry.get("run_id"):
                entry["run_id"] = run_id
                if run_url:
                    entry["run_url"] = run_url
            alerts.append((alert, done))
        return alerts

    built = ledger.update(fn)
    result.alerts = [a for a, _ in built]
    result.resolved = sum(1 for _, d in built if d)
    result.firing = len(built) - result.resolved
    try:
        r = requests.post(f"{url}/api/v2/alerts", json=result.alerts, timeout=timeout, **_auth_kwargs())
    except requests.Timeout:
        result.error = (f"Alertmanager at {url} did not answer within {timeout:g} s: {len(built)} incident(s) not "
                        f"sent (they are in the report and its run); check --alert / {ENV_URL}.")
    except requests.RequestException as exc:
        result.error = (f"Cannot reach Alertmanager at {url} ({type(exc).__name__}): {len(built)} incident(s) not "
                        f"sent (they are in the report and its run); check --alert / {ENV_URL}.")
    else:
        if r.status_code in (401, 403):
            result.error = (f"Alertmanager at {url} refused the alerts (HTTP {r.status_code}); set "
                            f"NBOPS_ALERTMANAGER_TOKEN or NBOPS_ALERTMANAGER_USER/PASSWORD.")
        elif r.status_code >= 300:
            result.error = (f"Alertmanager at {url} rejected the alerts (HTTP {r.status_code}: "
                            f"{r.text.strip()[:200]}); is it an Alertmanager (API v2)?")
    if result.error:
        log.warning("nbops: %s", result.error)
        _forget_failed(ledger, report, url)
    else:
        log.info("nbops: %s", result.line())

        def ack(data):
            for inc in report.incidents:
                sent = data["incidents"].get(report.keys[inc.id], {}).get("sent", {}).get(url)
                if sent is not None:
                    sent["acked"] = True
        ledger.update(ack)
    return result


def _forget_failed(ledger, report, url: str) -> None:
    """A send that failed did not happen: keep the frozen labels, drop the record of having sent."""
    def fn(data):
        for inc in report.incidents:
            sent = data["incidents"].get(report.keys[inc.id], {}).get("sent", {}).get(url)
            if sent and not sent.get("acked"):
                for k in ("first_sent", "sent_ongoing", "last_sent", "resolved"):
                    sent.pop(k, None)
    ledger.update(fn)
