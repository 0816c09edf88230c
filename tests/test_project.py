"""Project-level checks: declared dependencies agree, layout is as documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return {r.replace(" ", "") for r in reqs}


def _environment_pip_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    out, in_pip = set(), False
    for line in lines:
        if re.match(r"^\s*- pip:\s*$", line):
            in_pip = True
            continue
        if in_pip:
            m = re.match(r"^\s{6}- (.+)$", line)
            if not m:
                in_pip = False
                continue
            if not m.group(1).startswith("-e"):
                out.add(m.group(1).replace(" ", ""))
    return out


def test_environment_yml_matches_pyproject() -> None:
    py, env = _pyproject_requirements(), _environment_pip_requirements()
    assert py, "no dependencies parsed from pyproject.toml"
    assert env == py, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_constraints_pin_every_dependency() -> None:
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for req in _pyproject_requirements():
        name = re.split(r"[<>=!~\[]", req)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is declared in pyproject.toml but not pinned in .ci/constraints.txt"


def test_top_level_layout() -> None:
    for name in ["models", "analysis", "data", "notebooks", "tests", "environment.yml", "README.md"]:
        assert (ROOT / name).exists(), f"missing top-level {name}"
    for folder in ["models", "analysis", "data", "notebooks", "tests", "benchmarks"]:
        path = ROOT / folder
        has_readme = (path / "README.md").exists()
        init = path / "__init__.py"
        has_doc = init.exists() and init.read_text().lstrip().startswith('"""')
        assert has_readme or has_doc, f"{folder}/ needs a README.md or a package docstring"


def test_no_module_imports_another_modules_underscored_names() -> None:
    """Shared helpers have public names: no ``from x import _private`` across the project's
    modules. (nutpie's private helpers that `models.compiled` reuses to rebuild a cached
    model are outside this rule: nutpie is pinned in .ci/constraints.txt and the cache
    tests fail if they change.)"""
    import ast

    offenders = []
    for folder in ["models", "analysis", "data", "benchmarks", "notebooks"]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                project = ("models", "analysis", "data", "bench")
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in project:
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            offenders.append(
                                f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}"
                            )
    assert not offenders, "\n".join(offenders)
