"""Data contracts: infer what data must look like from a reference, check new data against it with pandera.

Public API (resolved lazily; pandera, pandas and mlflow load on first use)::

    validate(data, against, fail=False, ignore=None, keys=None) -> ValidationResult
    infer_contract(df, keys=None) -> Contract        # Contract.to_yaml() / Contract.load(path)
    infer_contract_spark(sdf, keys=None) -> Contract # the same rules, from Spark aggregates
    contract_for(against) -> Contract                # the contract a reference names
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "validate": "nbops.validation.api:validate",
    "ValidationResult": "nbops.validation.result:ValidationResult",
    "Contract": "nbops.validation.contract:Contract",
    "infer_contract": "nbops.validation.contract:infer",
    "contract_for": "nbops.validation.api:contract_for",
    "infer_contract_spark": "nbops.validation.spark:infer_contract_spark",
}
__all__ = list(_LAZY)

__getattr__ = lazy_getattr("nbops.validation", _LAZY, globals())
