"""Creating Vars: from data (numpy arrays, lists, scalars, DLPack) and by shape.

Python lists and scalars follow NumPy, except that Python floats become
float32 (our default float); numpy arrays keep their dtype.

>>> import mnn_expr as F
>>> F.array([[1, 2], [3, 4]]).dtype, F.array([1.5]).dtype, F.zeros((2, 3)).shape
(mnn_expr.int64, mnn_expr.float32, (2, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from . import _native
from ._dtype import DType, as_dtype, float32
from ._native import Var

DTypeLike = Union[DType, str, type, np.dtype, None]
ShapeLike = Union[int, Sequence[int]]

# MNN data formats: we accept them for compatibility; values are always NCHW/NHWC
# as given (packed layouts never leak to users).
NCHW, NHWC, NC4HW4 = "NCHW", "NHWC", "NC4HW4"
_FORMATS = (NCHW, NHWC, NC4HW4)

# numpy dtypes we do not store, mapped to the nearest one we do.
_WIDEN = {"int16": "int32", "uint16": "int32", "uint32": "int64", "uint64": "int64", "float128": "float64"}


def _shape(shape: Any, op: str) -> list[int]:
    if isinstance(shape, Var):
        shape = shape.read().tolist()
    if isinstance(shape, (int, np.integer)):
        shape = [shape]
    try:
        out = [int(d) for d in shape]
    except TypeError:
        raise TypeError(f"{op}: shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in out):
        raise ValueError(f"{op}: negative dimension in shape {tuple(out)}")
    return out


def _to_numpy(obj: Any, dtype: Optional[DType]) -> np.ndarray:
    """numpy view of ``obj`` with a dtype mnnpy stores (no copy when it can)."""
    explicit = isinstance(obj, (np.ndarray, np.generic))
    arr = np.asarray(obj) if dtype is None or dtype.name == "bfloat16" else np.asarray(obj, dtype=dtype.numpy)
    if arr.dtype.kind in "OUSVcM m".replace(" ", ""):
        raise TypeError(f"cannot make a Var from {type(obj).__name__} with numpy dtype {arr.dtype}")
    if dtype is None:
        if not explicit and arr.dtype == np.float64:
            arr = arr.astype(np.float32)  # Python floats: float32 is our default float
        elif arr.dtype.name in _WIDEN:
            arr = arr.astype(_WIDEN[arr.dtype.name])
    return arr if arr.flags.c_contiguous else np.array(arr, order="C")  # keeps 0-d arrays 0-d


def asarray(obj: Any, dtype: DTypeLike = None) -> Var:
    """A Var from array-like ``obj``, sharing a numpy array's memory when it can (like ``np.asarray``).

    Sharing happens for C-contiguous numpy arrays of a supported dtype; later
    writes to such an array are seen by the Var.  Use :func:`array` for a copy.

    >>> asarray(np.arange(3)).tolist()
    [0, 1, 2]
    """
    dt = None if dtype is None else as_dtype(dtype)
    if isinstance(obj, Var):
        return obj if dt is None or obj.dtype == dt else obj.astype(dt)
    if hasattr(obj, "__dlpack__") and not isinstance(obj, (np.ndarray, np.generic)):
        return _native.from_numpy(obj, copy=False, dtype=None if dt is None else dt.name)  # any dtype, bfloat16 too
    return _native.from_numpy(_to_numpy(obj, dt), copy=False, dtype=None if dt is None else dt.name)


def array(obj: Any, dtype: DTypeLike = None, copy: bool = True) -> Var:
    """A Var holding a copy of array-like ``obj`` (like ``np.array``).

    >>> array([1.0, 2.0]) .tolist()
    [1.0, 2.0]
    """
    if not copy:
        return asarray(obj, dtype)
    dt = None if dtype is None else as_dtype(dtype)
    if isinstance(obj, Var):
        v = obj.astype(dt) if dt is not None and obj.dtype != dt else obj
        return _native.from_numpy(v.read(), copy=True) if v is obj else v
    if hasattr(obj, "__dlpack__") and not isinstance(obj, (np.ndarray, np.generic)):
        return _native.from_numpy(obj, copy=True, dtype=None if dt is None else dt.name)
    return _native.from_numpy(_to_numpy(obj, dt), copy=True, dtype=None if dt is None else dt.name)


def from_dlpack(x: Any) -> Var:
    """A Var sharing the memory of any object that implements ``__dlpack__`` (CPU)."""
    return asarray(x)


def const(value: Any, shape: Optional[ShapeLike] = None, data_format: str = NCHW, dtype: DTypeLike = None) -> Var:
    """MNN's constant constructor: ``const(values, shape, data_format, dtype)``.

    >>> const([1, 2, 3, 4], [2, 2], dtype=float32).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    v = array(value, dtype)
    if shape is not None and tuple(_shape(shape, "const")) != v.shape:
        v = v.reshape(_shape(shape, "const"))
    return v


def scalar(value: Any, dtype: DTypeLike = None) -> Var:
    """A 0-d Var (MNN's ``scalar``)."""
    return array(value, dtype)


def placeholder(shape: ShapeLike = (), dtype: DTypeLike = float32, name: str = "", data_format: str = NCHW) -> Var:
    """An input Var with a shape and dtype but no value yet; give it one with ``write()``.

    MNN's ``placeholder(shape, format, dtype)`` order is accepted too.

    >>> x = placeholder([2], name="x"); x.write([1.0, 2.0]); (x * 2).tolist()
    [2.0, 4.0]
    """
    if isinstance(dtype, str) and dtype in _FORMATS:  # MNN order: placeholder(shape, NCHW, dtype)
        dtype, name = (float32, name) if isinstance(name, str) else (name, "")
    return _native.placeholder(_shape(shape, "placeholder"), as_dtype(dtype).name, name)


def full(shape: ShapeLike, fill_value: Any, dtype: DTypeLike = None) -> Var:
    """A Var of ``shape`` filled with ``fill_value``."""
    dt = as_dtype(dtype) if dtype is not None else _to_numpy(fill_value, None).dtype
    return array(np.full(_shape(shape, "full"), fill_value, dtype=as_dtype(dt).numpy), dtype=dt)


def zeros(shape: ShapeLike, dtype: DTypeLike = float32) -> Var:
    """A Var of zeros."""
    return full(shape, 0, dtype)


def ones(shape: ShapeLike, dtype: DTypeLike = float32) -> Var:
    """A Var of ones."""
    return full(shape, 1, dtype)


def empty(shape: ShapeLike, dtype: DTypeLike = float32) -> Var:
    """An uninitialised Var (here: zeros, so results are reproducible)."""
    return full(shape, 0, dtype)


def zeros_like(x: Any, dtype: DTypeLike = None) -> Var:
    """Zeros with ``x``'s shape (and dtype unless given)."""
    x = asarray(x)
    return zeros(x.shape, dtype or x.dtype)


def ones_like(x: Any, dtype: DTypeLike = None) -> Var:
    """Ones with ``x``'s shape (and dtype unless given)."""
    x = asarray(x)
    return ones(x.shape, dtype or x.dtype)


def full_like(x: Any, fill_value: Any, dtype: DTypeLike = None) -> Var:
    """``fill_value`` with ``x``'s shape (and dtype unless given)."""
    x = asarray(x)
    return full(x.shape, fill_value, dtype or x.dtype)


def empty_like(x: Any, dtype: DTypeLike = None) -> Var:
    """Like :func:`zeros_like`."""
    return zeros_like(x, dtype)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: DTypeLike = None) -> Var:
    """Evenly spaced values in ``[start, stop)`` (NumPy's ``arange``; floats default to float32).

    >>> arange(3).tolist(), arange(0, 1, 0.5).tolist()
    ([0, 1, 2], [0.0, 0.5])
    """
    if stop is None:
        start, stop = 0, start
    vals = [v.item() if isinstance(v, Var) else v for v in (start, stop, step)]
    if vals[2] == 0:
        raise ValueError("arange: step must not be zero")
    arr = np.arange(*vals)
    return array(arr if dtype is not None or arr.dtype != np.float64 else arr.astype(np.float32), dtype)


def range_(start: Any, limit: Any, delta: Any = 1) -> Var:
    """MNN's ``range(start, limit, delta)``."""
    return arange(start, limit, delta)


def linspace(start: float, stop: float, num: int = 50, endpoint: bool = True, dtype: DTypeLike = None) -> Var:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    if int(num) < 0:
        raise ValueError(f"linspace: num must be >= 0, got {num}")
    return array(np.linspace(start, stop, int(num), endpoint=endpoint), dtype or float32)


def eye(n: int, m: Optional[int] = None, k: int = 0, dtype: DTypeLike = float32) -> Var:
    """A 2-d Var with ones on the ``k``-th diagonal."""
    if int(n) < 0 or (m is not None and int(m) < 0):
        raise ValueError(f"eye: dimensions must be >= 0, got n={n}, m={m}")
    return array(np.eye(int(n), None if m is None else int(m), int(k)), dtype)


def identity(n: int, dtype: DTypeLike = float32) -> Var:
    """The ``n`` x ``n`` identity."""
    return eye(n, dtype=dtype)


def fill(shape: ShapeLike, value: Any) -> Var:
    """MNN's ``fill(shape, value)``."""
    return full(shape, value)


def clone(x: Var, deep_copy: bool = False) -> Var:
    """A new Var with ``x``'s value (MNN's ``clone``)."""
    return array(x) if deep_copy else asarray(x)


_native._set_converter(asarray)
