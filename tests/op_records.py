"""The op-record table: one record per public op, driving the property tests.

A record says how to call our op (``fn(F, *inputs, **params)``), how numpy
computes the same thing (``ref(*arrays, **params)``), which dtypes it
accepts, how to draw input shapes and values, and which primitives it
exercises (``covers``), so the coverage test can insist that every primitive
of the native op table is tested.  Family files in ``tests/records/`` each
define ``RECORDS``; :data:`ALL_RECORDS` collects them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from hypothesis import strategies as st

FLOATS = ("float32", "float64")
HALFS = ("float16", "bfloat16")
INTS = ("int8", "uint8", "int32", "int64")
SIGNED = ("int8", "int32", "int64")
NUMERIC = FLOATS + INTS
ALL = ("bool",) + NUMERIC + HALFS


@st.composite
def shapes(draw: Any, min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 5) -> tuple:
    """An arbitrary shape, including 0-d and size-0 dims."""
    nd = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.integers(min_side, max_side)) for _ in range(nd))


@st.composite
def broadcast_shapes(draw: Any, n: int = 2, min_dims: int = 0, max_dims: int = 4) -> tuple:
    """``n`` shapes that broadcast together (dims dropped from the left or set to 1)."""
    base = draw(shapes(min_dims=min_dims, max_dims=max_dims))
    out = []
    for _ in range(n):
        drop = draw(st.integers(0, len(base)))
        s = [d if draw(st.booleans()) else 1 for d in base[drop:]]
        out.append(tuple(s))
    return tuple(out)


def same_shapes(n: int, **kw: Any) -> Any:
    return shapes(**kw).map(lambda s: (s,) * n)


@dataclass
class OpRecord:
    name: str                                   # test id; usually the public function name
    fn: Callable[..., Any]                      # fn(F, *vars, **params) -> Var | sequence of Vars
    ref: Callable[..., Any]                     # ref(*np_arrays, **params) -> ndarray | sequence
    nargs: int = 1
    dtypes: tuple = FLOATS                      # dtypes the op accepts (all inputs share one)
    shapes: Any = None                          # strategy of an nargs-tuple of shapes
    params: Any = None                          # callable(shapes) -> strategy of a params dict
    low: float = -3.0                           # value range for floats (ints use a small range)
    high: float = 3.0
    values: Optional[Callable[..., list]] = None  # values(rng, shapes, dtype, params) -> list of arrays (overrides)
    rtol: float = 1e-5
    atol: float = 1e-6
    covers: tuple = ()                          # primitives exercised (names from F.OP_TABLE)
    result_dtype: Optional[Callable[..., str]] = None  # our documented dtype when it differs from numpy's
    check_dtype: bool = True
    lazy: bool = True                           # also run in lazy mode
    extra: dict = field(default_factory=dict)


def load_records() -> list[OpRecord]:
    from tests import records as pkg

    out: list[OpRecord] = []
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        out.extend(importlib.import_module(f"tests.records.{mod.name}").RECORDS)
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate record names: {dup}"
    return out


ALL_RECORDS = load_records()


def make_values(rec: OpRecord, rng: np.random.Generator, shp: tuple, dtype: str, params: dict) -> list:
    if rec.values is not None:
        return rec.values(rng, shp, dtype, params)
    out = []
    for s in shp:
        if dtype == "bool":
            a = rng.random(s) < 0.5
        elif dtype in INTS:
            lo, hi = (0, 10) if dtype == "uint8" else (-10, 10)
            lo, hi = max(lo, int(rec.low)), min(hi, int(rec.high) + 1)
            a = rng.integers(lo, max(hi, lo + 1), s)
            a = a.astype(dtype)
        else:
            a = rng.uniform(rec.low, rec.high, s)
            a = a.astype("float32" if dtype == "bfloat16" else dtype)
            if dtype == "bfloat16":  # make the values exactly representable
                a = (a.view(np.uint32) & 0xFFFF0000).view(np.float32)
        out.append(np.asarray(a))
    return out
