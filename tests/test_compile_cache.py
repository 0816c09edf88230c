"""The on-disk cache of compiled models (`models.compiled`), across processes.

Each test uses its own cache directory (``SAMEPLACE_CACHE_DIR``). The fits run in fresh
Python processes (``subprocess``), as a new session would: a tiny random-intercept model
is compiled, or loaded from the cache, and sampled; the process prints what
`models.compiled.compiled_model` reported and a hash of the draws. Compiling costs about
10 s per process, so the tests share the reference fit (compiled without the cache) and
the cache entry written by the concurrent pair.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FIT = r"""
import hashlib, json, sys, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore", DeprecationWarning)
import nutpie
from models import build_model_data, resolve_priors
from models.compiled import compiled_model

rng = np.random.default_rng(3)
n = int(sys.argv[1])
formula = sys.argv[2] if len(sys.argv) > 2 else "y ~ x + (1 | g)"
n_draws = int(sys.argv[3]) if len(sys.argv) > 3 else 30
g = np.repeat(np.arange(8), n // 8)
df = pd.DataFrame({"y": rng.integers(0, 2, n), "x": rng.normal(size=n), "g": [f"G{j}" for j in g]})
md = build_model_data(formula, df)
compiled, info = compiled_model(md, resolve_priors(md, None), centered=False)
trace = nutpie.sample(compiled, draws=n_draws, tune=n_draws, chains=2, cores=1, seed=5, progress_bar=False)
post = trace.posterior
draws = hashlib.sha256(b"".join(post[v].values.tobytes() for v in ("b", "Intercept", "sd_g", "r_g")))
print(json.dumps({**info, "draws": draws.hexdigest()}))
"""


def _start(cache: Path, n: int = 48, *args: str, **env: str) -> subprocess.Popen:
    environ = {**os.environ, "SAMEPLACE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), **env}
    return subprocess.Popen(
        [sys.executable, "-c", FIT, str(n), *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def _fit(cache: Path, n: int = 48, *args: str, **env: str) -> tuple[dict, str]:
    return _result(_start(cache, n, *args, **env))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The fit compiled without the disk cache."""
    res, _ = _fit(tmp_path_factory.mktemp("unused"), SAMEPLACE_COMPILE_CACHE="0")
    assert res["compile_cache"] == "off" and not res["reused"]
    return res


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, reference) -> Path:
    """A cache directory filled by two processes that fit the same structure at once."""
    cache = tmp_path_factory.mktemp("cache")
    procs = [_start(cache), _start(cache)]
    results = [_result(p)[0] for p in procs]
    statuses = sorted(r["compile_cache"] for r in results)
    # the second waits on the entry's lock and loads what the first wrote
    assert statuses in (["compiled", "disk"], ["compiled", "compiled"]), statuses
    for r in results:
        assert r["draws"] == reference["draws"], r
        assert r["structure_key"] == reference["structure_key"]
    return cache


def test_two_processes_at_once_share_one_entry(shared_cache):
    entries = list((shared_cache / "compiled").glob("*.nutpie"))
    assert len(entries) == 1
    assert not list((shared_cache / "compiled").glob("*.tmp"))


def test_a_new_process_loads_the_entry_with_the_same_draws(shared_cache, reference):
    res, err = _fit(shared_cache)
    assert res["compile_cache"] == "disk" and res["reused"], res
    assert res["compile_seconds"] < 3.0, res  # about 0.2 s; compiling takes about 10 s
    assert res["draws"] == reference["draws"]  # same machine code, initial points and data
    assert "Warning" not in err


def test_a_corrupt_entry_is_rebuilt_and_says_so(shared_cache, reference, tmp_path):
    cache = tmp_path / "cache"
    (cache / "compiled").mkdir(parents=True)
    (entry,) = (shared_cache / "compiled").glob("*.nutpie")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (cache / "compiled" / entry.name).write_bytes(bytes(data))
    res, err = _fit(cache)
    assert res["compile_cache"] == "rebuilt" and not res["reused"], res
    assert "checksum" in res["cache_note"]
    assert "CompileCacheWarning" in err and "unreadable" in err
    assert "Traceback" not in err
    assert res["draws"] == reference["draws"]
    res2, _ = _fit(cache)  # and the rewritten entry is good
    assert res2["compile_cache"] == "disk" and res2["draws"] == reference["draws"]


def test_draws_do_not_depend_on_whether_the_cache_was_cold(tmp_path):
    """Correlated slope, 400 rows, 2 chains x 100 draws: the process that compiles (cold cache)
    and the one that loads its entry (warm) give the same draws."""
    args = ("y ~ x + (1 + x | g)", "100")
    cold, _ = _fit(tmp_path, 400, *args)
    warm, _ = _fit(tmp_path, 400, *args)
    assert (cold["compile_cache"], warm["compile_cache"]) == ("compiled", "disk")
    assert warm["draws"] == cold["draws"]


# --------------------------------------------------------------------------- in one process


@pytest.fixture
def small():
    import numpy as np
    import pandas as pd

    from models import build_model_data, resolve_priors

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"y": rng.integers(0, 2, 40), "x": rng.normal(size=40), "g": np.repeat(list("abcd"), 10)}
    )
    md = build_model_data("y ~ x + (1 | g)", df)
    return md, resolve_priors(md, None)


@pytest.fixture
def stub_compile(monkeypatch, tmp_path):
    """`models.compiled` with compiling replaced by a stub (records the calls)."""
    from models import compiled as C

    monkeypatch.setenv("SAMEPLACE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SAMEPLACE_COMPILE_CACHE", raising=False)

    class Stub:
        def with_data(self, **values):
            return self

    calls = []
    monkeypatch.setattr(C, "_compile", lambda model: calls.append(model) or Stub())
    monkeypatch.setattr(C, "_save", lambda compiled, model, path: path.write_bytes(b"x"))
    C.clear_cache()
    yield C, calls
    C.clear_cache()


def test_changed_structure_or_versions_miss(small, stub_compile, monkeypatch):
    import numpy as np
    import pandas as pd

    from models.formula import build_model_data

    C, calls = stub_compile
    md, priors = small
    _, info = C.compiled_model(md, priors, centered=False)
    assert info["compile_cache"] == "compiled" and len(calls) == 1
    C.clear_cache()  # memory only: the next lookup goes to disk
    path = C.entry_path(info["structure_key"])
    assert path.exists()
    # a changed structure (one more row) is another entry
    rng = np.random.default_rng(1)
    g = list("abcdef" * 7) + ["a"]
    df = pd.DataFrame({"y": rng.integers(0, 2, 43), "x": rng.normal(size=43), "g": g})
    md2 = build_model_data("y ~ x + (1 | g)", df)
    _, info2 = C.compiled_model(md2, priors, centered=False)
    assert info2["structure_key"] != info["structure_key"]
    assert info2["compile_cache"] == "compiled" and len(calls) == 2
    # changed package versions or model code: another version key, another entry
    C.clear_cache()
    monkeypatch.setattr(C, "version_key", lambda: "0123456789abcdef")
    assert C.entry_path(info["structure_key"]) != path
    _, info3 = C.compiled_model(md, priors, centered=False)
    assert info3["compile_cache"] == "compiled" and len(calls) == 3


def test_version_key_names_packages_and_code():
    from models import compiled as C

    key = C.version_key()
    assert len(key) == 16 and key == C.version_key()
    assert {"logistic.py", "ops.py", "kernels.py"} <= set(C.CODE_FILES)


def test_unreadable_entries_are_rejected_before_use(tmp_path):
    from models import compiled as C

    for content, why in [
        (b"", "not a compiled-model entry"),
        (b"garbage" * 20, "not a compiled-model entry"),
        (C._MAGIC + b"0" * 64 + b"\n" + b"body", "checksum"),
    ]:
        p = tmp_path / "e.nutpie"
        p.write_bytes(content)
        with pytest.raises(C._Unreadable, match=why):
            C._read_entry(p)


def test_location_switch_and_clearing(monkeypatch, tmp_path, small, stub_compile):
    C, calls = stub_compile
    assert C.cache_dir() == tmp_path
    monkeypatch.delenv("SAMEPLACE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.cache_dir() == tmp_path / "xdg" / "sameplace"
    monkeypatch.setenv("SAMEPLACE_CACHE_DIR", str(tmp_path))
    md, priors = small
    monkeypatch.setenv("SAMEPLACE_COMPILE_CACHE", "0")
    _, info = C.compiled_model(md, priors, centered=False)
    assert info["compile_cache"] == "off" and not C.cache_entries()
    C.clear_cache()
    monkeypatch.delenv("SAMEPLACE_COMPILE_CACHE")
    C.compiled_model(md, priors, centered=False)
    assert len(C.cache_entries()) == 1
    _, info = C.compiled_model(md, priors, centered=False)
    assert info["compile_cache"] == "memory" and info["reused"]
    assert C.clear_cache(disk=True) == 1 and not C.cache_entries()
