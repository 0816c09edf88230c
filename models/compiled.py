"""Compile once per model structure, in memory and on disk, across processes.

nutpie compiles a PyMC model's log density and gradient to machine code (numba). That
takes 10-20 s per structure; sampling a grid of models (outcomes x specifications x
subgroups), or a new process fitting a model fitted before, must not pay it again.
`compiled_model` looks for the structure (`models.sampling_form.structure_key`) in

1. memory (this process): the compiled model with the new data swapped in
   (``CompiledModel.with_data``);
2. the disk cache: the machine code of nutpie's two C callbacks (log density and
   gradient; the expansion to every traced variable), loaded without compiling; the
   rest of nutpie's compiled model (initial points, coordinates, the data) is rebuilt
   from the PyMC model of this data, which takes a fraction of a second;
3. otherwise it compiles, and writes the machine code to the disk cache.

A model loaded from disk gives the same draws, for the same seed, as a freshly compiled
one (same machine code, same initial-point function, same data).

Compiling is cut where nutpie's wrapper made it slow (`_compile`): the model is compiled
with one row of data (nutpie freezes compile-time data into the code; numba embeds large
arrays by address, which would tie the code to this process) and nutpie's C callbacks
copy their outputs with loops (`_plain_copy_callbacks`: no slice-assignment error message
for numba to compile, about 3 s per process).

Disk cache
----------
Location: ``$SAMEPLACE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/sameplace``, else
``~/.cache/sameplace``; entries live in its ``compiled/`` folder, one file per structure
and version key (`cache_dir`, `entry_path`). Set ``SAMEPLACE_COMPILE_CACHE=0`` (or
`DISK_CACHE` to False) to neither read nor write it. Clear it with `clear_cache` (``disk=True``)
or ``python -m models.compiled --clear``; ``python -m models.compiled`` lists it.

An entry is keyed by the model structure and by `version_key`: the versions of pymc,
pytensor, nutpie, numba, llvmlite, numpy and Python, the processor that compiled it
(numba's target triple, CPU name and features), PyTensor's ``floatX`` and a hash of this
package's model code (`CODE_FILES`). A change of any of them is a miss. Entries are
written to a temporary file and renamed into place (atomic), under a per-entry file lock
(``fcntl.flock``): two processes that need the same structure at once compile it once, the
second waits and loads it. An entry that cannot be read (truncated, altered: it carries a
SHA-256 of its content, checked before anything in it is used) is compiled again and
rewritten, with a `CompileCacheWarning` and no traceback. Entries are pickles: the cache
directory must be writable only by its owner, like any cache of executable code.

The compiled model is the sampling form of the model (``fast_likelihood=True`` in
`models.logistic.hierarchical_logistic`): same parameters and log density, likelihood and
gradient in one loop. Set ``FAST_LIKELIHOOD = False`` to sample the straightforward model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import pickle
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.cumulative import build_model
from models.formula import ModelData
from models.priors import Prior
from models.sampling_form import data_values, structure_key

_CACHE: OrderedDict[str, object] = OrderedDict()
MAX_CACHED = 16
FAST_LIKELIHOOD = True
"""Compile the sampling form of the model (`models.ops.glmm_loglik`)."""
DISK_CACHE = True
"""Read and write the on-disk cache (also off when ``SAMEPLACE_COMPILE_CACHE=0``)."""
CACHE_DIR_ENV = "SAMEPLACE_CACHE_DIR"
SWITCH_ENV = "SAMEPLACE_COMPILE_CACHE"
LOCK_TIMEOUT_S = 900.0
"""Longest wait for another process compiling the same structure; then compile anyway."""
CODE_FILES = (
    "logistic.py",
    "sampling_form.py",
    "ops.py",
    "kernels.py",
    "priors.py",
    "compiled.py",
    "spatial.py",
    "cumulative.py",
    "weights.py",
)
"""Modules of `models` whose code shapes the compiled model (their hash is in the key)."""
_FORMAT = 1
_MAGIC = b"sameplace-compiled-model\n"
_SUFFIX = ".nutpie"


class CompileCacheWarning(UserWarning):
    """The disk cache of compiled models could not be read or written (the fit goes on)."""


def compiled_model(md: ModelData, priors: dict[str, Prior], *, centered) -> tuple[object, dict]:
    """A nutpie compiled model for this model data, from the caches when possible.

    Parameters
    ----------
    md : ModelData
    priors : dict
        Resolved priors (`models.priors.resolve_priors`).
    centered : bool or dict
        Parameterisation of the group effects (`models.logistic.hierarchical_logistic`).

    Returns
    -------
    compiled : nutpie CompiledModel, with this data set
    info : dict
        ``reused`` (bool: no compilation), ``compile_seconds`` (float: compiling, or
        loading from disk), ``structure_key`` (str), ``compile_cache`` (``"memory"``,
        ``"disk"``, ``"compiled"``: not in the cache, now written; ``"rebuilt"``: the entry
        was unreadable, compiled and rewritten; ``"off"``: disk cache not used) and
        ``cache_note`` (str, why an entry was not read or written; empty when all went well).
    """
    key = structure_key(md, priors, centered=centered, fast_likelihood=FAST_LIKELIHOOD)
    info = {"structure_key": key, "cache_note": ""}
    if key in _CACHE:
        _CACHE.move_to_end(key)
        compiled = _CACHE[key].with_data(
            **data_values(md, priors, fast_likelihood=FAST_LIKELIHOOD, centered=centered)
        )
        return compiled, {**info, "reused": True, "compile_seconds": 0.0, "compile_cache": "memory"}
    t0 = time.perf_counter()
    model = build_model(md, priors, centered=centered, fast_likelihood=FAST_LIKELIHOOD)
    if not disk_cache_enabled():
        compiled = _compile(model)
        info.update(reused=False, compile_cache="off")
    else:
        compiled, status, note = _from_disk_or_compile(model, entry_path(key))
        info.update(reused=status == "disk", compile_cache=status, cache_note=note)
    info["compile_seconds"] = time.perf_counter() - t0
    _remember(key, compiled)
    return compiled, info


def _remember(key: str, compiled: object) -> None:
    _CACHE[key] = compiled
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)


ROW_DATA = ("XT_rows", "XS_rows", "P_effects", "W_effects", "y_lik", "n_lik")
"""The sampling form's data with one entry per row (or cell), along the last axis."""


def _compile(model) -> object:
    """nutpie's compiled model, compiled with one row of data and then given all of it.

    nutpie freezes the data present at compile time into the machine code as constants
    (its placeholders for the data it passes at run time). Large arrays are then embedded
    by address, which ties the code to this process (it could not be cached on disk), and
    the bytes of small ones are compiled in. With one row the code is the same for any
    number of rows (shapes are read at run time), and the real data are swapped in after.

    PyTensor's numba code is generated without fastmath: the saved object code holds its own
    copies of PyTensor's numba functions, and a process binds each to whichever definition it
    loaded first, so with fastmath a process that compiled the model and one that loaded it
    from disk rounded the log density differently in the last bit (issue #14), and their draws
    drifted apart. The likelihood kernels (`models.kernels`) keep their own flags.
    """
    import nutpie
    import pytensor

    full = {}
    for name in ROW_DATA:
        var = model.named_vars.get(name)
        if var is not None and var.get_value().shape[-1] > 1:
            full[name] = var.get_value()
            var.set_value(full[name][..., :1].copy())
    try:
        with _plain_copy_callbacks(), pytensor.config.change_flags(numba__fastmath=False):
            compiled = nutpie.compile_pymc_model(model, backend="numba")
    finally:
        for name, value in full.items():
            model.named_vars[name].set_value(value)
    return compiled.with_data(**full) if full else compiled


@contextlib.contextmanager
def _plain_copy_callbacks() -> Iterator[None]:
    """nutpie's C callbacks replaced by `_make_c_logp_func` and `_make_c_expand_func`:
    generated code that numba compiles in about half the time (see there)."""
    import nutpie.compile_pymc as ncp

    saved = ncp._make_c_logp_func, ncp._make_c_expand_func
    ncp._make_c_logp_func, ncp._make_c_expand_func = _make_c_logp_func, _make_c_expand_func
    try:
        yield
    finally:
        ncp._make_c_logp_func, ncp._make_c_expand_func = saved


def _data_reads(shared_data: dict, keys: list[str], record_dtype: np.dtype, env: dict) -> list[str]:
    """Lines of generated code that bind ``a0, a1, ...`` to the model's arrays, read from
    nutpie's ``user_data`` record (bound to ``user_data_``).

    nutpie's callbacks (``nutpie.compile_pymc.make_extraction_fn``) type the record and unroll
    a loop of inlined overloads over its fields. The record type is new in every compilation
    (its field names are random), and numba retyped the whole callback after each inlined
    field: 2-4 s of every new structure. The record holds only 8-byte words (each array's
    address, size and shape), so these lines read them at word offsets fixed here: the same
    arrays from the same record, in code that numba types once.
    """
    shared = record_dtype["shared"]
    base = record_dtype.fields["shared"][1]
    if record_dtype.itemsize % 8 or any(
        shared[part][k].base.itemsize != 8 for part in ("data", "size", "shape") for k in keys
    ):
        raise TypeError("nutpie's data record is not made of 8-byte words")

    def word(part: str, key: str) -> int:
        return (base + shared.fields[part][1] + shared[part].fields[key][1]) // 8

    lines = [f"u = numba.carray(user_data_, ({record_dtype.itemsize // 8},), np.uint64)"]
    for i, key in enumerate(keys):
        value = shared_data[key]
        env[f"dtype{i}"] = value.dtype
        size = f"int(u[{word('size', key)}])"
        data = f"numba.carray(address_as_void_pointer(u[{word('data', key)}]), ({size},), dtype{i})"
        dims = [f"int(u[{word('shape', key) + j}])" for j in range(value.ndim)]
        shape = f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
        lines.append(f"a{i} = {data}.reshape({shape})")
    return lines


def _callback(source: str, name: str, env: dict):
    """The Python function ``name`` defined by the generated ``source``."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    env |= {"numba": numba, "np": np, "address_as_void_pointer": address_as_void_pointer}
    exec(compile(source, f"<sameplace {name}>", "exec"), env)
    return env[name]


def _indent(lines: list[str], depth: int) -> str:
    return "".join(" " * depth + line + "\n" for line in lines)


def _make_c_logp_func(n_dim, logp_fn, user_data, shared_keys, shared_data):
    """`nutpie.compile_pymc._make_c_logp_func`, with the data read by `_data_reads` and the
    gradient copied by a loop.

    nutpie copies with ``out[...] = grad`` and tests ``np.all(np.isfinite(out))``: numba then
    types and compiles the broadcasting error message of the slice assignment (string
    formatting of shapes) and ``np.all``, about 3 s of every process's first compilation.
    The reads are written into the callback itself: a separate function would link the
    model's whole LLVM code into its own library, and the callback would generate it a
    second time. Same values, same return codes.
    """
    import numba

    env = {"inner": logp_fn}
    reads = _data_reads(shared_data, shared_keys, user_data.dtype, env)
    args = "".join(f", a{i}" for i in range(len(shared_keys)))
    source = f"""
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
{_indent(reads, 8)}        logp_val, grad = inner(x{args})
        if grad.shape[0] != {n_dim}:
            return 1
        logp[()] = logp_val
        finite = True
        for i in range({n_dim}):
            out[i] = grad[i]
            finite = finite and np.isfinite(grad[i])
        if not finite:
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""
    c_sig = numba.types.int64(
        numba.types.uint64,
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.voidptr,
    )
    return _callback(source, "logp_numba", env), c_sig


def _make_c_expand_func(n_dim, n_expanded, expand_fn, user_data, shared_var_keys, shared_data):
    """`nutpie.compile_pymc._make_c_expand_func`, with the data read by `_data_reads` and the
    values copied by a loop (as `_make_c_logp_func`)."""
    import numba

    env = {"inner": expand_fn}
    reads = _data_reads(shared_data, shared_var_keys, user_data.dtype, env)
    args = "".join(f", a{i}" for i in range(len(shared_var_keys)))
    source = f"""
def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
{_indent(reads, 8)}        (values,) = inner(x{args})
        if values.shape[0] != {n_expanded}:
            return -2
        for i in range({n_expanded}):
            out[i] = values[i]
    except Exception:
        return -2
    return 0
"""
    c_sig = numba.types.int64(
        numba.types.uint64,
        numba.types.uint64,
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.voidptr,
    )
    return _callback(source, "expand_numba", env), c_sig


# --------------------------------------------------------------------------- locations and keys


def disk_cache_enabled() -> bool:
    """Whether `compiled_model` reads and writes the disk cache."""
    return DISK_CACHE and os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    """The cache directory: ``$SAMEPLACE_CACHE_DIR``, ``$XDG_CACHE_HOME/sameplace`` or
    ``~/.cache/sameplace`` (compiled models in its ``compiled/`` folder)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sameplace"


def entry_path(key: str) -> Path:
    """The file of the entry for structure ``key`` under the current `version_key`."""
    return cache_dir() / "compiled" / f"{key}-{version_key()}{_SUFFIX}"


@lru_cache(maxsize=1)
def version_key() -> str:
    """A hash of everything besides the model structure that the machine code depends on.

    Package versions (pymc, pytensor, nutpie, numba, llvmlite, numpy, Python), the processor
    (numba's target triple, CPU name and features), PyTensor's ``floatX``, this cache's
    format and the source of the `CODE_FILES` of `models`.
    """
    from importlib.metadata import version

    import pytensor
    from numba.core.registry import cpu_target

    parts: list[Any] = [_FORMAT, sys.version]
    parts += [(p, version(p)) for p in ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")]
    parts.append(cpu_target.target_context.codegen().magic_tuple())
    parts.append(pytensor.config.floatX)
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        parts.append((name, hashlib.sha256((here / name).read_bytes()).hexdigest()))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- disk cache


def _from_disk_or_compile(model, path: Path) -> tuple[object, str, str]:
    """Load the entry at ``path`` or compile and write it. Returns (compiled, status, note)."""
    status, note = "compiled", ""
    if path.exists():
        try:
            return _load(path, model), "disk", ""
        except _Unreadable as e:
            status, note = "rebuilt", str(e)
            _warn(f"compiled-model cache entry {path.name} unreadable ({e}); compiling it again")
    with _entry_lock(path) as locked:
        if status == "compiled" and locked and path.exists():  # written while we waited
            try:
                return _load(path, model), "disk", ""
            except _Unreadable as e:
                status, note = "rebuilt", str(e)
                _warn(f"compiled-model cache entry {path.name} unreadable ({e}); compiling it again")
        compiled = _compile(model)
        try:
            _save(compiled, model, path)
        except _NotCacheable as e:
            note = f"not cached: {e}"
        except OSError as e:
            note = f"not cached: {e}"
            _warn(f"could not write the compiled-model cache entry {path}: {e}")
    return compiled, status, note


class _Unreadable(Exception):
    """A cache entry that cannot be used (the model is compiled again)."""


class _NotCacheable(Exception):
    """A compiled model whose machine code cannot be reused in another process."""


def _warn(message: str) -> None:
    warnings.warn(message, CompileCacheWarning, stacklevel=4)


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``<entry>.lock`` (True), or go on without one (False) when the
    directory cannot be written or another process holds it past `LOCK_TIMEOUT_S`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        yield locked
    finally:
        os.close(fd)  # releases the lock


@dataclasses.dataclass
class _LoadedCallback:
    """A C callback loaded from the disk cache (stands in for numba's ``CFunc``)."""

    address: int
    library: object
    environments: list


def _save(compiled, model, path: Path) -> None:
    """Write the machine code and layout of a nutpie compiled model to ``path`` (atomic)."""
    from numba.core import bytecode
    from numba.core.environment import lookup_environment

    if type(bytecode.FunctionIdentity._unique_ids).__name__ != "_RandomUidIter":
        # PyTensor makes numba's symbol names random; with numba's counter, names from two
        # processes could clash when loaded into one
        raise _NotCacheable("numba's function names are not unique across processes")
    callbacks, envs = {}, []
    for field in ("compiled_logp_func", "compiled_expand_func"):
        cfunc = getattr(compiled, field)
        library = cfunc._library  # the callback with every function it calls linked in
        if library.has_dynamic_globals:
            raise _NotCacheable(f"{field} holds addresses of this process")
        for gv in library._final_module.global_variables:
            if gv.name.startswith("_ZN08NumbaEnv"):
                env = lookup_environment(gv.name)
                if env is not None and env.can_cache() and env not in envs:
                    envs.append(env)
        try:
            callbacks[field] = (library.serialize_using_object_code(), cfunc.native_name)
        except Exception as e:  # noqa: BLE001 - anything unexpected: not cached
            raise _NotCacheable(f"{field}: {e}") from None
    shared = [
        (key, var.name, compiled.shared_data[key].dtype.str, compiled.shared_data[key].ndim)
        for var, key in compiled.shared_var_keys.items()
    ]
    entry = {
        "format": _FORMAT,
        "environments": envs,
        "callbacks": callbacks,
        "shared": shared,
        "n_dim": compiled.n_dim,
        "n_expanded": compiled.n_expanded,
        "n_free": len(model.free_RVs),
        "shape_info": compiled.shape_info,
        "reparameterized_names": list(compiled.reparameterized_names),
    }
    try:
        body = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - anything that does not pickle is not cached
        raise _NotCacheable(f"does not pickle ({type(e).__name__}: {e})") from None
    data = _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_entry(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Unreadable(f"cannot read: {e.strerror}") from None
    head = len(_MAGIC)
    if not data.startswith(_MAGIC) or data[head + 64 : head + 65] != b"\n":
        raise _Unreadable("not a compiled-model entry")
    digest, body = data[head : head + 64], data[head + 65 :]
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise _Unreadable("checksum mismatch: truncated or altered")
    try:
        entry = pickle.loads(body)
    except Exception as e:  # noqa: BLE001 - e.g. a class that no longer exists
        raise _Unreadable(f"cannot unpickle ({type(e).__name__})") from None
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
        raise _Unreadable("unknown format")
    return entry


def _load(path: Path, model) -> object:
    """A nutpie ``CompiledPyMCModel`` for ``model`` from the machine code in ``path``.

    Raises
    ------
    _Unreadable
        The entry is damaged or does not fit the model (it is then compiled again).
    """
    try:
        return _load_entry(_read_entry(path), model)
    except _Unreadable:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged entry must not end the fit
        raise _Unreadable(f"{type(e).__name__}: {e}") from None


def _load_entry(entry: dict, model) -> object:
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
        make_user_data,
    )
    from pymc.initial_point import make_initial_point_fn
    from pytensor.compile.sharedvalue import SharedVariable

    # the model's data, as nutpie takes it (`_compile_pymc_model_numba`)
    shared_vars = {v.name: v for v in model.named_vars.values() if isinstance(v, SharedVariable)}
    shared_vars |= {k: v for k, v in model.dim_lengths.items() if isinstance(v, SharedVariable)}
    shared_data, shared_var_keys = {}, {}
    for key, name, dtype, ndim in entry["shared"]:
        var = shared_vars.get(name)
        if var is None:
            raise _Unreadable(f"stale: the model has no data {name!r}")
        value = np.array(var.get_value(), order="C", copy=True)
        if value.dtype.str != dtype or value.ndim != ndim:
            raise _Unreadable(f"stale: data {name!r} is {value.dtype}[{value.ndim}], entry {dtype}[{ndim}]")
        value.flags.writeable = False
        shared_data[key] = value
        shared_var_keys[_SharedName(name, ndim)] = key
    user_data = make_user_data(shared_var_keys, shared_data)

    target = cpu_target.target_context
    rtsys.initialize(target)  # numba's runtime (NRT) symbols, which the machine code calls
    codegen = target.codegen()
    callbacks = {}
    for field, (libdata, name) in entry["callbacks"].items():
        library = codegen.unserialize_library(libdata)
        address = library.get_pointer_to_function(name)
        if not address:
            raise _Unreadable(f"no symbol {name}")
        callbacks[field] = _LoadedCallback(address, library, entry["environments"])
    for env in entry["environments"]:  # what numba's own cache does (`CompileResult._rebuild`)
        codegen.set_env(env.env_name, env)

    # nutpie's initial points (`compile_pymc_model`): support points jittered by U(-1, 1)
    names, _, shapes = entry["shape_info"]
    n_free = entry["n_free"]
    point_fn = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), default_strategy="support_point", return_transformed=True
    )
    point_fn = _rv_dict_to_flat_array_wrapper(
        _wrap_with_lock(point_fn), names=names[:n_free], shapes=shapes[:n_free]
    )
    dims, coords = _prepare_dims_and_coords(model, entry["shape_info"], entry["reparameterized_names"])
    return CompiledPyMCModel(
        _n_dim=entry["n_dim"],
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*entry["shape_info"], strict=True)},
        compiled_logp_func=callbacks["compiled_logp_func"],
        compiled_expand_func=callbacks["compiled_expand_func"],
        initial_point_func=point_fn,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=entry["n_expanded"],
        shape_info=entry["shape_info"],
        logp_func=None,
        expand_func=None,
        reparameterized_names=entry["reparameterized_names"],
    )


@dataclasses.dataclass(frozen=True, eq=False)
class _SharedName:
    """Stands in for a PyTensor shared variable in nutpie's ``shared_var_keys`` (name, ndim)."""

    name: str
    ndim: int


# --------------------------------------------------------------------------- maintenance


def cache_entries() -> list[Path]:
    """The entries of the disk cache (every structure and version key)."""
    folder = cache_dir() / "compiled"
    return sorted(folder.glob(f"*{_SUFFIX}")) if folder.is_dir() else []


def clear_cache(*, disk: bool = False) -> int:
    """Forget every compiled model kept in memory (the next fit of each structure loads it
    from disk or compiles it); with ``disk=True`` also delete the disk cache's entries.

    Returns
    -------
    int
        Number of disk entries deleted.
    """
    _CACHE.clear()
    if not disk:
        return 0
    removed = 0
    folder = cache_dir() / "compiled"
    if folder.is_dir():
        for p in folder.iterdir():
            if p.suffix in (_SUFFIX, ".lock", ".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += p.suffix == _SUFFIX
    return removed


def main(argv: list[str] | None = None) -> int:
    """``python -m models.compiled [--clear]``: list (or delete) the disk cache's entries."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m models.compiled", description=main.__doc__)
    p.add_argument("--clear", action="store_true", help="delete every entry")
    a = p.parse_args(argv)
    if a.clear:
        print(f"deleted {clear_cache(disk=True)} entries from {cache_dir() / 'compiled'}")
        return 0
    entries = cache_entries()
    size = sum(p.stat().st_size for p in entries)
    print(f"{cache_dir() / 'compiled'}: {len(entries)} entries, {size / 2**20:.1f} MiB")
    for p in entries:
        print(f"  {p.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
