"""The prepared reference: everything about the reference side that does not depend on the current batch.

Typing, missing counts, the sorted values of numeric columns and the category counts of categorical ones are
computed once; ``check_drift(ref, batch)`` with the same :class:`Reference` then only prepares the batch.
That is the scheduled-monitoring case: one training snapshot, a new batch every day. ``run:<id>`` references
are prepared once per process (a run's snapshot never changes).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import DriftError
from .columns import (DEFAULT_MAX_CATEGORIES, ColumnSpec, column_list, as_frame, float_values, infer_spec,
                      select_columns)

log = logging.getLogger("nbops")


@dataclass
class PreparedColumn:
    spec: ColumnSpec
    n: int                              # rows
    n_missing: int
    sorted: Any = None                  # numeric: present values, sorted (float64)
    mean: float = float("nan")
    std: float = float("nan")
    labels: Any = None                  # categorical: pandas Index of category labels
    counts: Any = None                  # categorical: count per label (int64)

    @property
    def n_present(self) -> int:
        return self.n - self.n_missing

    def distinct(self) -> int:
        import numpy as np

        if self.spec.kind == "numeric":
            return int(len(self.sorted) and 1 + np.count_nonzero(np.diff(self.sorted)))
        if self.spec.kind == "categorical":
            return int((self.counts > 0).sum())
        return 0

    def encode(self, s):
        """Integer codes of the current side's present values on this column's labels (unseen labels get new
        codes after the reference's), the missing count, and the unseen labels in code order."""
        import numpy as np
        import pandas as pd

        k = len(self.labels)
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = s.cat.categories
            table = self.labels.get_indexer(cats)
            unseen = np.flatnonzero(table < 0)
            table[unseen] = k + np.arange(len(unseen))
            raw = s.cat.codes.to_numpy()
            present = raw >= 0
            codes = table[raw[present]].astype(np.int64)
            new = list(cats[unseen])
            if new:  # keep only the unseen categories that really occur
                used = np.bincount(codes, minlength=k + len(new))[k:] > 0
                remap = np.full(k + len(new), -1)
                remap[:k] = np.arange(k)
                keep = np.flatnonzero(used)
                remap[k + keep] = k + np.arange(len(keep))
                codes = remap[codes]
                new = [new[i] for i in keep]
            return codes, int((~present).sum()), new
        missing = s.isna().to_numpy()
        idx = self.labels.get_indexer(s)
        unseen = (idx < 0) & ~missing
        new: list = []
        if unseen.any():
            vals = s[unseen]
            new_index = pd.Index(pd.unique(vals))
            idx[unseen] = k + new_index.get_indexer(vals)
            new = list(new_index)
        return idx[~missing].astype(np.int64), int(missing.sum()), new


@dataclass
class Reference:
    """A reference prepared for repeated checks: ``ref = nbops.drift.prepare_reference(train_df)`` then
    ``nbops.check_drift(ref, batch)`` as often as batches come."""
    columns: dict[str, PreparedColumn]
    roles: list[tuple[str, str]]
    n_rows: int
    options: dict = field(default_factory=dict)
    source: str = "DataFrame"           # what the reference is: DataFrame, run:<id>, models:/name@alias
    data: Any = None                    # the reference frame (for its data version)
    run_id: str | None = None           # the run whose snapshot this is (run: and models:/ references)
    model: dict | None = None           # {"name", "version", "alias"} for a models:/ reference

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for c in self.columns.values():
            kinds[c.spec.kind] = kinds.get(c.spec.kind, 0) + 1
        return f"<Reference {self.source}: {self.n_rows:,} rows, " + \
            ", ".join(f"{v} {k}" for k, v in kinds.items()) + ">"


def forced_types(roles, categorical, numeric) -> tuple[set, set]:
    """The ``categorical=`` / ``numeric=`` columns as sets, checked against the columns ``roles`` checks."""
    categorical, numeric = set(column_list(categorical)), set(column_list(numeric))
    unknown = sorted((categorical | numeric) - {c for c, _ in roles})
    if unknown:
        raise DriftError(f"categorical=/numeric= name columns that are not checked: {unknown}.", columns=unknown)
    both = sorted(categorical & numeric)
    if both:
        raise DriftError(f"Columns {both} are named both categorical and numeric; pick one.", columns=both)
    return categorical, numeric


def prepare_reference(data, *, features=None, target=None, prediction=None, categorical=None, numeric=None,
                      max_categories: int = DEFAULT_MAX_CATEGORIES, source: str = "DataFrame",
                      _roles: list[tuple[str, str]] | None = None) -> Reference:
    """Prepare ``data`` (a DataFrame, ``run:<id>`` or ``models:/<name>@<alias>``) as a drift reference for
    repeated checks. Options as in :func:`nbops.check_drift`."""
    run_id = model = None
    if isinstance(data, str):
        from .sources import resolve_reference

        src = resolve_reference(data)
        data, source, run_id, model = src.frame, src.label, src.run_id, src.model
    df = as_frame(data, "reference")
    roles = _roles or select_columns(df, df, features=features, target=target, prediction=prediction)
    categorical, numeric = forced_types(roles, categorical, numeric)

    def one(item):
        name, role = item
        s = df[name]
        n_missing = int(s.isna().sum())
        if n_missing == len(s):
            return None
        return _prepare(infer_spec(name, role, s, categorical, numeric, max_categories), s, n_missing)

    prepared = map_columns(one, roles, progress=False)
    cols = {name: pc for (name, _), pc in zip(roles, prepared) if pc is not None}
    all_missing = [name for (name, _), pc in zip(roles, prepared) if pc is None]
    if all_missing:
        raise DriftError(f"Columns {all_missing} have no values at all in the reference ({source}); there is no "
                         f"distribution to compare with. Leave them out (features=[...]) or fix the reference.",
                         columns=all_missing)
    opts = {"categorical": sorted(categorical), "numeric": sorted(numeric), "max_categories": max_categories}
    return Reference(cols, roles, len(df), opts, source=source, data=data, run_id=run_id, model=model)


def map_columns(fn, items, progress, cells: int = 0):
    """``[fn(item) for item in items]`` in order, on up to one thread per core. A bar only with ``progress=True``
    or, with ``progress=None``, for checks of at least ``BAR_CELLS`` values (``cells``) in an interactive shell."""
    import os

    workers = min(len(items), os.cpu_count() or 1)
    bar = None
    if progress is True or (progress is None and len(items) >= 8):
        from ..display.progress import tqdm

        bar = tqdm(total=len(items), desc="drift", unit="col", leave=False, progress=progress)
    if workers <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            bar and bar.update()
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="nbops-drift") as pool:
            futures = [pool.submit(fn, item) for item in items]
            out = []
            for f in futures:
                out.append(f.result())
                bar and bar.update()
    bar and bar.close()
    return out


BAR_CELLS = 20_000_000  # about a second of work: below that a bar is noise


def _interactive() -> bool:
    """A person is watching: an IPython kernel that is not run by papermill / nbconvert (they save outputs)."""
    import os
    import sys

    if os.environ.get("NBOPS_PARENT_RUN_ID") or "papermill" in sys.modules:
        return False
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def _prepare(spec: ColumnSpec, s, n_missing: int) -> PreparedColumn:
    import numpy as np
    import pandas as pd

    pc = PreparedColumn(spec, len(s), n_missing)
    if spec.kind == "numeric":
        x = float_values(s)
        if n_missing:
            x = x[~np.isnan(x)]
        pc.sorted = np.sort(x)
        pc.mean = float(x.mean())
        pc.std = float(x.std())
    elif spec.kind == "categorical":
        if isinstance(s.dtype, pd.CategoricalDtype):
            labels = s.cat.categories
            raw = s.cat.codes.to_numpy()
            pc.counts = np.bincount(raw[raw >= 0], minlength=len(labels)).astype(np.int64)
            pc.labels = labels
        else:
            try:
                codes, labels = pd.factorize(s, sort=True, use_na_sentinel=True)
            except TypeError:  # mixed types that do not sort
                codes, labels = pd.factorize(s, use_na_sentinel=True)
            pc.counts = np.bincount(codes[codes >= 0], minlength=len(labels)).astype(np.int64)
            pc.labels = pd.Index(labels)
    return pc
