"""Writing result files so that a half-written file never sits under its final name."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``<path>.partial`` and rename it to ``path`` once complete.

    Parameters
    ----------
    path : path
        Final file name (parent folders are created).
    text : str
        UTF-8 content.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
