"""Element types of Vars.

A ``DType`` compares equal to its name, to the matching numpy dtype and to the
numpy scalar type, so ``x.dtype == "float32"``, ``x.dtype == np.float32`` and
``x.dtype == mnn_expr.float32`` all hold.

>>> import mnn_expr as F
>>> F.ones([2]).dtype
mnn_expr.float32
"""

from __future__ import annotations

from typing import Any

import numpy as np


class DType:
    """An mnnpy element type (bool, int8, uint8, int32, int64, float16, bfloat16, float32, float64)."""

    __slots__ = ("name", "itemsize", "kind")

    def __init__(self, name: str, itemsize: int, kind: str) -> None:
        self.name = name
        self.itemsize = itemsize
        self.kind = kind  # "b" bool, "i" signed, "u" unsigned, "f" float

    @property
    def is_floating(self) -> bool:
        return self.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.kind in "iu"

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype values of this type are read as (bfloat16 reads as float32)."""
        return np.dtype("float32" if self.name == "bfloat16" else self.name)

    def __repr__(self) -> str:
        return f"mnn_expr.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return other is self
        try:
            return as_dtype(other) is self  # type: ignore[arg-type]
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.name)


bool_ = DType("bool", 1, "b")
int8 = DType("int8", 1, "i")
uint8 = DType("uint8", 1, "u")
int32 = DType("int32", 4, "i")
int64 = DType("int64", 8, "i")
float16 = DType("float16", 2, "f")
bfloat16 = DType("bfloat16", 2, "f")
float32 = DType("float32", 4, "f")
float64 = DType("float64", 8, "f")

ALL_DTYPES = (bool_, int8, uint8, int32, int64, float16, bfloat16, float32, float64)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
# Spellings from NumPy and MNN (``F.float``, ``F.int``, ``F.double``).
_BY_NAME.update({"float": float32, "double": float64, "int": int32, "half": float16, "bool_": bool_})


def as_dtype(x: Any) -> DType:
    """Converts a DType, a name, a numpy dtype or a Python/numpy type to a DType.

    >>> as_dtype("float32") is float32 and as_dtype(np.int64) is int64
    True
    """
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        d = _BY_NAME.get(x)
        if d is not None:
            return d
        raise TypeError(f"unknown dtype '{x}'; expected one of {', '.join(d.name for d in ALL_DTYPES)}")
    if x is bool:
        return bool_
    if x is int:
        return int64
    if x is float:
        return float32
    try:
        name = np.dtype(x).name
    except TypeError:
        raise TypeError(f"cannot interpret {x!r} as a dtype") from None
    d = _BY_NAME.get(name)
    if d is None:
        raise TypeError(f"numpy dtype {name} is not supported by mnnpy")
    return d


def result_type(*args: Any) -> DType:
    """dtype that an elementwise op over ``args`` produces (NEP 50, float32 default float)."""
    from . import _native

    return _BY_NAME[_native.result_dtype(*args)]


def promote_types(a: Any, b: Any) -> DType:
    """Strong promotion of two dtypes, as ``numpy.promote_types`` (int16 -> int32, which we lack)."""
    from . import _native

    return _BY_NAME[_native.promote_types(as_dtype(a).name, as_dtype(b).name)]
