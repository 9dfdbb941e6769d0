"""What the registry holds, as JSON-ready records: each registered model, its aliases -> version -> the run
behind it (with the audit's who / when / status), and its newest versions. Read by ``GET /nbops/api/models``
(JupyterLab's promote panel); shapes in docs/server-api.md."""
from __future__ import annotations

from ..display.views import iso_ms
from .audit import P, STATUS

MAX_VERSIONS = 20


def models(client=None) -> list[dict]:
    """Every registered model of the store, by name."""
    from ..display.links import model_url
    from ..tracking.writer import get_writer

    c = client or get_writer().client
    out, token = [], None
    while True:
        page = c.search_registered_models(max_results=100, page_token=token)
        out += list(page)
        token = getattr(page, "token", None)
        if not token:
            break
    run_names: dict[str, str | None] = {}

    def run_name(run_id: str | None) -> str | None:
        if not run_id:
            return None
        if run_id not in run_names:
            try:
                run_names[run_id] = c.get_run(run_id).info.run_name
            except Exception:  # noqa: BLE001 - the source run may be gone; the version still serves
                run_names[run_id] = None
        return run_names[run_id]

    result = []
    for rm in sorted(out, key=lambda m: m.name):
        from ..tracking.mlflow_errors import quote

        aliases = {a: str(v) for a, v in (getattr(rm, "aliases", {}) or {}).items()}
        by_version: dict[str, list[str]] = {}
        for a, v in aliases.items():
            by_version.setdefault(v, []).append(a)
        versions = sorted(c.search_model_versions(f"name={quote(rm.name)}"), key=lambda mv: int(mv.version),
                          reverse=True)
        known = {str(mv.version): mv for mv in versions}
        alias_rows = []
        for a in sorted(aliases):
            mv = known.get(aliases[a])
            tags = dict(getattr(mv, "tags", {}) or {}) if mv else {}
            alias_rows.append({"alias": a, "version": aliases[a], "run_id": mv.run_id if mv else None,
                               "run_name": run_name(mv.run_id) if mv else None,
                               "promote_status": tags.get(STATUS), "who": tags.get(P + "who"),
                               "when": tags.get(P + "when"), "url": model_url(rm.name, aliases[a])})
        result.append({
            "name": rm.name, "description": rm.description or "", "url": model_url(rm.name),
            "aliases": alias_rows,
            "versions": [{"version": str(mv.version), "run_id": mv.run_id, "created": iso_ms(mv.creation_timestamp),
                          "aliases": sorted(by_version.get(str(mv.version), []))} for mv in versions[:MAX_VERSIONS]],
        })
    return result
