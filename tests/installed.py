"""What to do when something the set-up installs is missing: skip with the install command
on a user's machine, fail in CI (``CI`` set), where `bash .ci/setup` must have installed it."""

from __future__ import annotations

import os

import pytest


def require_installed(ok: bool, message: str) -> None:
    """Skip (or, in CI, fail) the calling test when ``ok`` is False, saying ``message``."""
    if ok:
        return
    text = f"{message} (bash .ci/setup installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"missing install step in CI: {text}")
    pytest.skip(text)
