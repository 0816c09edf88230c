"""Data layer: real LA covariates, the UKHLS reader and the synthetic release.

Nothing here depends on PyMC. Main entry points (imported lazily)::

    from data import prepare, read_release, generate_release, ReaderConfig
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "prepare": "data.prepare",
    "read_release": "data.ukhls",
    "build_table": "data.ukhls",
    "ReaderConfig": "data.config",
    "Audit": "data.audit",
    "DataError": "data.errors",
    "describe_columns": "data.dictionary",
    "load_la_covariates": "data.areas",
    "harmonise_la_code": "data.areas",
    "harmonise_la_codes": "data.areas",
    "generate_release": "data.synthetic",
    "simulate": "data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
