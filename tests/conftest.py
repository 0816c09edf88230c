"""Shared test set-up: tests marked ``needs_r`` are skipped, with the reason, when R,
lme4 or jsonlite cannot be used (``analysis.lme4.r_available`` says which); in CI, where the
set-up installs them, they fail instead (`installed.require_installed`)."""

from __future__ import annotations

import pytest
from installed import require_installed


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scheduler",
        default="local",
        help="where the calibration replicates run (tests/test_models_slow.py): 'local' (a 2-worker "
        "Dask LocalCluster), 'serial' (this process) or a scheduler address such as tcp://host:8786",
    )


@pytest.fixture(autouse=True)
def _skip_without_r(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("needs_r") is not None:
        from analysis.lme4 import r_available

        require_installed(*r_available())
