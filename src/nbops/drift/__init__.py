"""Drift checks: is today's data still like the data the model learned from?

``check_drift(reference, current, **options) -> DriftReport`` types every column (numbers, categories,
booleans; datetimes skipped with a note), tests each one with nbops's own engine on scipy (KS or
Cramer-von Mises for numbers, Chi-squared for categories; alibi-detect's detectors with ``engine="alibi"``), tests the share of missing values separately,
puts an effect size next to every p-value, corrects for multiple testing and calls a feature drifted only when
its corrected p-value is below ``p_val`` *and* its effect reaches ``min_effect``.

Modules: ``columns`` (typing, validation, encoding), ``reference`` (the prepared, reusable reference),
``stats`` (tests, effect sizes, corrections), ``alibi`` (the optional alibi-detect engine), ``report`` (DriftReport), ``plots``, ``sources``
(``run:`` / ``models:/`` references), ``record`` (MLflow logging, model-version tags, ``--on-drift``),
``check`` (the API), ``magics`` (``%drift``). This file stays light: ``%load_ext nbops`` imports the package.
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "check_drift": "nbops.drift.check:check_drift",
    "prepare_reference": "nbops.drift.reference:prepare_reference",
    "Reference": "nbops.drift.reference:Reference",
    "DriftReport": "nbops.drift.report:DriftReport",
    "FeatureDrift": "nbops.drift.report:FeatureDrift",
    "DEFAULT_MIN_EFFECT": "nbops.drift.stats:DEFAULT_MIN_EFFECT",
}
__all__ = list(_LAZY)


__getattr__ = lazy_getattr("nbops.drift", _LAZY, globals())
