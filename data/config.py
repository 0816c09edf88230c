"""Reader configuration: binary-outcome cut-offs, code sets and file locations.

The study's exact cut-offs were never published, so every one is a field of
:class:`ReaderConfig`. The defaults are documented field by field below and in
``data/README.md``; the synthetic generator draws its outcomes under these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from data.areas import PUBLISHED_AREA_COLUMNS

__all__ = ["ReaderConfig", "EDUCATION_CODES", "DEFAULT_CONFIG"]

#: ``hiqual_dv`` code -> education category (the categories' order in the table).
EDUCATION_CODES: tuple[tuple[int, str], ...] = (
    (1, "degree"),
    (2, "other_higher"),
    (3, "a_level"),
    (4, "gcse"),
    (5, "other"),
    (9, "none"),
)


@dataclass(frozen=True)
class ReaderConfig:
    """Options of :func:`data.ukhls.read_release`.

    Outcome cut-offs (a respondent is 1 when the condition holds, 0 when it does not,
    missing when the item is missing):

    Attributes
    ----------
    life_satisfied_min : float
        ``life_satisfied = sclfsato >= 6`` (wave 6; 1 completely dissatisfied ...
        7 completely satisfied), i.e. mostly or completely satisfied.
    swemwbs_high_min : float
        ``mental_wellbeing_high = swemwbs >= 24`` (wave 7).
    swemwbs_source : {"auto", "dv", "items"}
        Where ``swemwbs`` comes from. "dv": the released ``swemwbs_dv`` as it is (its
        metric is whatever the release documents). "items": the raw sum of
        ``scwemwba``-``scwemwbg`` (7-35, missing unless all seven are present).
        "auto" (default): ``swemwbs_dv`` when the column exists, otherwise the items.
    ghq_case_min : float
        ``ghq_case = scghq2_dv >= 4`` (wave 6; GHQ-12 caseness 0-12).
    belonging_codes : tuple of int
        ``belonging = scopngbha in (1, 2)`` (strongly agree or agree; wave 6).
    local_friends_codes : tuple of int
        ``local_friends = scopngbhb in (1, 2)`` (wave 6).
    lonely_min : float
        ``lonely = sclonely >= 2`` (wave 9; 1 hardly ever or never, 2 some of the
        time, 3 often).
    community_items : tuple of str
        Letters of the cohesion items ``scopngbh<x>`` whose reversed mean (6 - x) is
        ``community_score`` (1-5, higher = stronger community). Default c, d, e, f, g:
        a (belonging) and b (local friendships) are modelled as links and h (talking to
        neighbours) feeds ``sociability``. All chosen items must be present.
    community_abs_min : float
        ``community_abs = community_score >= 3.5``.
    married_codes : tuple of int
        ``mastat_dv`` codes counted as married (2 married, 3 civil partnership).
    unemployed_codes : tuple of int
        ``jbstat`` codes counted as unemployed (3).
    unsafe_codes : tuple of int
        ``crdark`` codes counted as feeling unsafe after dark (3 a bit unsafe,
        4 very unsafe).
    unsafe_never_out : {"missing", "unsafe", "safe"}
        What ``crdark == 5`` ("never goes out alone at night") means for ``unsafe``.
        Default "missing": the person did not rate their safety.
    age50_min : float
        ``age50 = age >= 50``.
    signed_variables : tuple of str
        Variables whose negative values are genuine values, not missing-value codes:
        household net income ``fihhmnnet1_dv`` (negative with self-employment losses).
        Their non-positive values are counted in the audit and give a missing
        ``income_eq``.
    age_vars : tuple of str
        Candidate age variables; the first present is used (``age_dv``, ``dvage``).
    education_codes : tuple of (int, str)
        ``hiqual_dv`` code -> category; other codes give a missing category.
    base_wave, swemwbs_wave, lonely_wave : str
        Wave letters: base (one row per adult, default "f" = wave 6), the wave giving
        SWEMWBS ("g" = 7) and the one giving loneliness ("i" = 9).
    la_path : Path, optional
        Folder with the SN 6666 ``w_oslaua_protect`` files, when they are not in the
        release folder, its ``sn6666`` subfolder or the wave folders.
    area_columns : tuple of (str, str)
        Analysis name -> column of ``la_covariates.csv`` for the published area
        covariates.
    extra_area_files : tuple of Path
        Extra LA-level CSVs keyed by LA code (``lad19cd``, ``lad`` or ``la_code``); each
        other numeric column ``x`` becomes ``area_x_raw`` and its z-score ``area_x``.
    auto_extra_area : bool
        Also use ``area_simulated.csv`` when it lies in the release folder (synthetic
        releases; the audit notes it and the data dictionary labels it simulated).
    """

    life_satisfied_min: float = 6
    swemwbs_high_min: float = 24
    swemwbs_source: Literal["auto", "dv", "items"] = "auto"
    ghq_case_min: float = 4
    belonging_codes: tuple[int, ...] = (1, 2)
    local_friends_codes: tuple[int, ...] = (1, 2)
    lonely_min: float = 2
    community_items: tuple[str, ...] = ("c", "d", "e", "f", "g")
    community_abs_min: float = 3.5
    married_codes: tuple[int, ...] = (2, 3)
    unemployed_codes: tuple[int, ...] = (3,)
    unsafe_codes: tuple[int, ...] = (3, 4)
    unsafe_never_out: Literal["missing", "unsafe", "safe"] = "missing"
    age50_min: float = 50
    age_vars: tuple[str, ...] = ("age_dv", "dvage")
    signed_variables: tuple[str, ...] = ("fihhmnnet1_dv",)
    education_codes: tuple[tuple[int, str], ...] = EDUCATION_CODES
    base_wave: str = "f"
    swemwbs_wave: str = "g"
    lonely_wave: str = "i"
    la_path: Path | None = None
    area_columns: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: tuple((k, v[0]) for k, v in PUBLISHED_AREA_COLUMNS.items())
    )
    extra_area_files: tuple[Path, ...] = ()
    auto_extra_area: bool = True

    def __post_init__(self) -> None:
        if self.swemwbs_source not in ("auto", "dv", "items"):
            raise ValueError(f"swemwbs_source must be auto, dv or items, not {self.swemwbs_source!r}")
        if self.unsafe_never_out not in ("missing", "unsafe", "safe"):
            raise ValueError(
                f"unsafe_never_out must be missing, unsafe or safe, not {self.unsafe_never_out!r}"
            )
        bad = [x for x in self.community_items if x not in "abcdefgh" or len(x) != 1]
        if bad or not self.community_items:
            raise ValueError(f"community_items must be letters a-h, got {self.community_items!r}")

    def with_(self, **changes: object) -> ReaderConfig:
        """Return a copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONFIG = ReaderConfig()
