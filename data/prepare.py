"""One call from a release (real or synthetic) to the analysis table and its audit.

>>> from data.prepare import prepare
>>> table, audit = prepare(n=5_000)          # doctest: +SKIP  (synthetic release)
>>> table, audit = prepare("/data/ukhls")    # doctest: +SKIP  (real SN 6614 + SN 6666)

From the command line: ``sameplace prepare [RELEASE_DIR] [--out DIR] [--n N] [--seed S] [--save F]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from data.audit import Audit
from data.config import ReaderConfig
from data.synthetic import DEFAULT_SEED, GENERATOR_VERSION, generate_release
from data.ukhls import read_release

__all__ = ["default_synthetic_dir", "prepare", "save_table"]


def default_synthetic_dir(n: int, seed: int) -> Path:
    """Where :func:`prepare` puts a synthetic release by default (git-ignored)."""
    return Path("synthetic") / f"ukhls_n{n}_seed{seed}"


def _matches(release: Path, n: int, seed: int) -> bool:
    try:
        meta = json.loads((release / "truth.json").read_text())["_meta"]
    except (OSError, ValueError, KeyError):
        return False
    return meta.get("n") == n and meta.get("seed") == seed and meta.get("version") == GENERATOR_VERSION


def prepare(
    release_dir: str | Path | None = None,
    out: str | Path | None = None,
    n: int = 25_000,
    seed: int = DEFAULT_SEED,
    config: ReaderConfig | None = None,
) -> tuple[pd.DataFrame, Audit]:
    """Read a UKHLS release, generating a synthetic one when none is given.

    Parameters
    ----------
    release_dir : str or Path, optional
        A real (or synthetic) release folder. When omitted, a synthetic release is
        generated in ``out`` (or reused if one with the same ``n``, ``seed`` and
        generator version is already there).
    out : str or Path, optional
        Folder for the synthetic release (default ``synthetic/ukhls_n<n>_seed<seed>``).
    n, seed : int
        Size and seed of the synthetic release.
    config : ReaderConfig, optional
        Reader options (cut-offs, ...).

    Returns
    -------
    table : pandas.DataFrame
        The analysis table.
    audit : Audit
        Its audit report (``print(audit)`` for a readable version).
    """
    note = None
    if release_dir is None:
        release = Path(out) if out is not None else default_synthetic_dir(n, seed)
        if _matches(release, n, seed):
            note = f"reused the synthetic release in {release} (n={n:,}, seed={seed})"
        else:
            generate_release(release, n=n, seed=seed)
            note = f"generated a synthetic release in {release} (n={n:,}, seed={seed})"
    else:
        release = Path(release_dir)
    table, audit = read_release(release, config)
    if note:
        audit.notes.insert(0, note)
    return table, audit


def save_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the analysis table: Parquet for a ``.parquet`` name, CSV otherwise.

    Parameters
    ----------
    table : pandas.DataFrame
    path : path

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if path.suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path
