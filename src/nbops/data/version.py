"""``DataVersion``: what :func:`nbops.fingerprint` returns -- the exact identity (digest) of some data, plus what
a person wants to see about it (shape, schema, a small profile, where it came from, when)."""
from __future__ import annotations

import datetime as _dt
import html
import json
from dataclasses import dataclass, field

SCHEMA_VERSION = 1
SCHEME_PREFIX = "v2:"      # v2 digests of in-memory data carry it; v1 digests are 32 bare hex digits (docs/data.md)


def digest_scheme(digest: str | None) -> int:
    """The scheme a digest was made with: 2 for ``v2:<32 hex>``, 1 for the bare 32 hex digits nbops wrote before
    (files and folders keep bare digests under every scheme: the xxh3-128 of their bytes)."""
    return 2 if isinstance(digest, str) and digest.startswith(SCHEME_PREFIX) else 1


def short_digest(digest: str) -> str:
    """The first 12 hex digits, with the scheme prefix when there is one (``v2:4c277888bd22``)."""
    if digest.startswith(SCHEME_PREFIX):
        return SCHEME_PREFIX + digest[len(SCHEME_PREFIX):][:12]
    return digest[:12]


def _fmt_int(n) -> str:
    return "?" if n is None else f"{n:,}"


def _fmt_bytes(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_value(v) -> str:
    """A profile figure as text: empty for None, floats to 6 significant digits."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _mlflow_type(dtype: str) -> str:
    d = dtype.lower()
    if d.startswith("double"):
        return "double"
    if d.startswith("timestamp"):
        return "datetime"
    if d.startswith(("int", "uint")):
        return "integer" if d.endswith(("8", "16", "32")) else "long"
    if d.startswith("float"):
        return "float" if d.endswith("32") or d.endswith("16") else "double"
    if d.startswith(("bool",)):
        return "boolean"
    if d.startswith(("datetime", "date")):
        return "datetime"
    if d.startswith(("bytes", "binary")):
        return "binary"
    return "string"


@dataclass
class DataVersion:
    """The version of a frame, array, file or folder.

    ``digest`` is the full 128-bit xxh3 hex digest of the content (every cell, the dtypes and the column
    names; see :func:`nbops.fingerprint` for exactly what is covered), ``short`` its first 12 hex digits.
    ``schema`` lists ``{"name", "dtype"}`` per column; ``profile`` holds ``{"columns": [...]}`` with per column
    nulls, min/max/mean (numbers, dates), distinct and top values (strings, categories) and the column's own
    digest, which :func:`nbops.data.diff` uses to say which columns changed.
    """

    digest: str
    name: str | None
    kind: str                                   # frame | series | array | polars | file | folder
    rows: int | None
    columns: list[str]
    schema: list[dict]
    profile: dict
    source: dict
    created: _dt.datetime
    nbytes: int | None = None
    seconds: float | None = None
    runs: list[dict] = field(default_factory=list)   # filled by lineage look-ups (history)

    # -- identity -------------------------------------------------------------------------------------------
    @property
    def short(self) -> str:
        return short_digest(self.digest)

    @property
    def scheme(self) -> int:
        """The digest scheme (2 now; 1 for versions recorded by nbops before digest scheme v2)."""
        return digest_scheme(self.digest)

    @property
    def bytes_digest(self) -> bool:
        """A file or folder: its digest is the xxh3-128 of bytes, the same under every scheme."""
        return self.kind in ("file", "folder")

    def comparable(self, other: "DataVersion") -> bool:
        """Whether the two digests can be compared: made by the same scheme (or both digests of bytes)."""
        return self.scheme == other.scheme or (self.bytes_digest and other.bytes_digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, DataVersion) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def column_digests(self) -> dict[str, str]:
        return {c["name"]: c.get("digest") for c in self.profile.get("columns", [])}

    @property
    def dtypes(self) -> dict[str, str]:
        return {c["name"]: c["dtype"] for c in self.schema}

    @property
    def types(self) -> dict[str, str]:
        """Logical type per column (scheme v2: ``int64``, ``string``, ``timestamp[UTC]``, ...; the container's
        dtype string for v1 versions)."""
        return {c["name"]: c.get("type") or c["dtype"] for c in self.schema}

    # -- MLflow records -------------------------------------------------------------------------------------
    def mlflow_schema(self) -> dict:
        """Schema JSON: MLflow's ``mlflow_colspec`` (so the MLflow UI shows a table) plus nbops's exact dtypes."""
        return {"mlflow_colspec": [{"type": _mlflow_type(c.get("type") or c["dtype"]), "name": c["name"],
                                    "required": True}
                                   for c in self.schema],
                "nbops": {"version": SCHEMA_VERSION, "digest_scheme": self.scheme, "kind": self.kind,
                          "columns": self.schema}}

    def mlflow_profile(self) -> dict:
        return {"num_rows": self.rows, "num_elements": (self.rows or 0) * max(len(self.columns), 1),
                "nbops": {**self.profile, "nbytes": self.nbytes, "created": self.created.isoformat()}}

    def to_record(self, name: str | None = None, context: str = "training") -> dict:
        """The dataset-input record the writer logs (see ``Writer.log_inputs``)."""
        return {"name": name or self.name or "dataset", "digest": self.digest,
                "source_type": "local" if (self.source or {}).get("path") else "code",
                "source": json.dumps(self.source, default=str), "schema": json.dumps(self.mlflow_schema()),
                "profile": json.dumps(self.mlflow_profile(), default=str), "context": context}

    @classmethod
    def from_dataset(cls, ds, created: _dt.datetime | None = None) -> "DataVersion":
        """Rebuild a version from an MLflow ``Dataset`` entity that nbops logged (others are read as well as
        their JSON allows)."""
        def load(text):
            try:
                return json.loads(text) if text else {}
            except (TypeError, ValueError):
                return {}

        schema_j, profile_j, source = load(ds.schema), load(ds.profile), load(ds.source)
        nb = schema_j.get("nbops") or {}
        schema = nb.get("columns") or [{"name": c.get("name"), "dtype": c.get("type")}
                                       for c in schema_j.get("mlflow_colspec", [])]
        prof = profile_j.get("nbops") or {}
        when = created
        if when is None and prof.get("created"):
            try:
                when = _dt.datetime.fromisoformat(prof["created"])
            except ValueError:
                when = None
        return cls(digest=ds.digest, name=ds.name, kind=nb.get("kind", "unknown"),
                   rows=profile_j.get("num_rows"), columns=[c["name"] for c in schema], schema=schema,
                   profile={k: v for k, v in prof.items() if k not in ("nbytes", "created")},
                   source=source if isinstance(source, dict) else {"source": source},
                   created=when or _dt.datetime.fromtimestamp(0, _dt.timezone.utc), nbytes=prof.get("nbytes"))

    # -- views ------------------------------------------------------------------------------------------------
    def to_frame(self):
        """One row per column (per file for a folder): dtype, logical type, nulls, min, max, mean, distinct, top
        values."""
        import pandas as pd

        if self.kind == "folder":
            return pd.DataFrame(self.profile.get("files", []), columns=["path", "bytes", "digest"])
        rows = []
        for c in self.profile.get("columns", []) or [{"name": s["name"], "dtype": s["dtype"]} for s in self.schema]:
            rows.append({"column": c["name"], "dtype": c.get("dtype"), "type": c.get("type"), "nulls": c.get("nulls"),
                         "min": c.get("min"), "max": c.get("max"), "mean": c.get("mean"),
                         "distinct": c.get("distinct"),
                         "top": ", ".join(f"{v} ({n:,})" for v, n in c.get("top", [])) or None,
                         "digest": (c.get("digest") or "")[:12] or None})
        df = pd.DataFrame(rows, columns=["column", "dtype", "type", "nulls", "min", "max", "mean", "distinct",
                                         "top", "digest"])
        for c in ("nulls", "distinct"):  # counts, missing where they do not apply (distinct of a number column)
            df[c] = pd.array(df[c].tolist(), dtype="Int64")
        return df

    def describe_source(self) -> str:
        s = self.source or {}
        if s.get("path"):
            return s["path"]
        if s.get("variable"):
            return f"variable {s['variable']}"
        return s.get("type", self.kind)

    def shape_text(self) -> str:
        if self.kind == "folder":
            return f"{_fmt_int(self.profile.get('file_count'))} files, {_fmt_bytes(self.nbytes)}"
        if self.kind == "file" and self.rows is None:
            return _fmt_bytes(self.nbytes)
        return f"{_fmt_int(self.rows)} rows x {len(self.columns)} columns"

    def __repr__(self) -> str:
        head = f"DataVersion {self.name or '(unnamed)'} {self.short}: {self.shape_text()} [{self.kind}]"
        v1 = self.scheme == 1 and not self.bytes_digest and self.kind != "unknown"
        lines = [head, f"  digest  {self.digest}" + ("  (digest scheme v1)" if v1 else ""),
                 f"  source  {self.describe_source()}",
                 f"  created {self.created.isoformat(timespec='seconds')}"]
        if self.seconds is not None and self.nbytes:
            lines.append(f"  hashed  {_fmt_bytes(self.nbytes)} in {self.seconds:.3f}s")
        cols = self.profile.get("columns", [])
        for c in cols[:30]:
            bits = [f"nulls={c.get('nulls', 0)}"]
            for k in ("min", "max", "mean"):
                if c.get(k) is not None:
                    bits.append(f"{k}={format_value(c[k])}")
            if c.get("top"):
                bits.append("top=" + ", ".join(f"{v!s}({n})" for v, n in c["top"][:3]))
            lines.append(f"  {c['name']!s:<20} {c.get('dtype', '')!s:<12} " + " ".join(bits))
        if len(cols) > 30:
            lines.append(f"  ... {len(cols) - 30} more columns")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        head = (f"<div class='nbops-dataversion'><b>{e(self.name or 'data')}</b> "
                f"<code title='{e(self.digest)}'>{e(self.short)}</code> · {e(self.shape_text())} · "
                f"{e(self.kind)} · {e(self.describe_source())} · "
                f"{e(self.created.isoformat(timespec='seconds'))}")
        if self.seconds is not None and self.nbytes:
            head += f" · hashed {e(_fmt_bytes(self.nbytes))} in {self.seconds:.3f}s"
        head += "</div>"
        df = self.to_frame()
        if len(df) == 0:
            return head
        more = ""
        if len(df) > 50:
            more = f"<div>… {len(df) - 50} more</div>"
            df = df.head(50)
        df = df.astype(object).where(df.notna(), "")   # a figure that does not apply is an empty cell, not None
        return head + df.to_html(index=False, na_rep="", escape=True, border=0) + more
