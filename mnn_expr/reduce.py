"""Reductions (sum, mean, prod, max, min, any, all, argmax, argmin, var, std,
logsumexp, ...) and cumulative ops (cumsum, cumprod), NumPy-style.

``axis`` is ``None`` (every axis), an int or a tuple of ints (negative counts
from the end); ``keepdims`` keeps reduced axes with size 1.  Result dtypes
follow NumPy 2 except where our float32 default applies:

- ``sum``/``prod``/``cumsum``/``cumprod`` of bool and integers give int64
  (NumPy: uint64 for unsigned inputs; we have no uint64);
- ``mean``/``var``/``std``/``logsumexp`` of bool and integers give float32
  (NumPy: float64);
- ``max``/``min`` keep the dtype, ``any``/``all`` give bool, ``argmax``/``argmin`` int64.

NaN propagates through ``max``/``min``; ``argmax``/``argmin`` return the first
NaN, as NumPy.  Reducing an empty axis gives the identity (sum 0, prod 1,
any False, all True); ``max``/``min``/``argmax``/``argmin`` raise ValueError.

MNN's ``reduce_sum(x, axis=[], keepdims=False)`` family is here too, where
``axis=[]`` reduces every axis.

>>> import mnn_expr as F
>>> x = F.array([[1, 2], [3, 4]])
>>> F.sum(x).item(), F.mean(x, axis=0).tolist(), x.max(axis=1, keepdims=True).shape
(10, [2.0, 3.0], (2, 1))
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any, Optional, Union

from . import _native
from ._core import apply1, normalize_axes, normalize_axis
from ._dtype import as_dtype
from ._native import Var
from ._var import attach
from .creation import asarray, full, zeros_like

ArrayLike = Any
Axis = Union[None, int, Sequence[int]]

__all__ = [
    "sum",
    "mean",
    "prod",
    "max",
    "min",
    "amax",
    "amin",
    "any",
    "all",
    "argmax",
    "argmin",
    "var",
    "std",
    "logsumexp",
    "ptp",
    "cumsum",
    "cumprod",
    "count_nonzero",
    "nansum",
    "nanmean",
    "nanmax",
    "nanmin",
    "average",
    "moments",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_any",
    "reduce_all",
]


# ---- helpers ---------------------------------------------------------------------


def _flatten(x: Var) -> Var:
    return x if x.ndim == 1 else apply1("reshape", [x], shape=[-1])


def _axes(x: Var, axis: Axis, op: str) -> Optional[list]:
    """Sorted non-negative axes; ``None`` for "every axis"; ``[]`` for an explicit empty tuple."""
    if axis is None:
        return None
    return normalize_axes(axis, x.ndim, op)


def _count(x: Var, axes: Optional[list]) -> int:
    shape = x.shape
    return math.prod(shape[a] for a in (range(x.ndim) if axes is None else axes))


def _out_shape(x: Var, axes: Optional[list], keepdims: bool) -> list:
    red = set(range(x.ndim)) if axes is None else set(axes)
    return [1 if i in red else d for i, d in enumerate(x.shape) if keepdims or i not in red]


def _sum_dtype(x: Var) -> str:
    return x.dtype.name if x.dtype.is_floating else "int64"


def _float_dtype(x: Var) -> str:
    return x.dtype.name if x.dtype.is_floating else "float32"


def _reduce(prim: str, x: ArrayLike, axis: Axis, keepdims: bool, dtype: Any = None) -> Var:
    """Applies reduction primitive ``prim`` (``reduce_sum``, ...) over ``axis``."""
    x = asarray(x)
    if dtype is not None:
        x = _native.cast(x, as_dtype(dtype).name)
    axes = _axes(x, axis, prim)
    if axes is not None and not axes:  # axis=(): nothing to reduce, only the dtype rule applies
        out = {
            "reduce_sum": _sum_dtype(x),
            "reduce_prod": _sum_dtype(x),
            "reduce_mean": _float_dtype(x),
            "reduce_any": "bool",
            "reduce_all": "bool",
        }.get(prim, x.dtype.name)
        r = _native.cast(x, out)
    else:
        r = apply1(prim, [x], axes=[] if axes is None else axes, keepdims=builtins.bool(keepdims))
    if dtype is not None and r.dtype != as_dtype(dtype):
        r = _native.cast(r, as_dtype(dtype).name)
    return r


# ---- NumPy reductions ------------------------------------------------------------------


def sum(
    x: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    *,
    keepdims: bool = False,  # noqa: A001
    initial: Any = None,
) -> Var:
    """Sum over ``axis`` (ints and bool sum in int64; float32 sums pairwise, as NumPy).

    >>> import mnn_expr as F
    >>> F.sum(F.array([[1, 2], [3, 4]]), axis=1).tolist()
    [3, 7]
    """
    r = _reduce("reduce_sum", x, axis, keepdims, dtype)
    return r if initial is None else r + initial


def prod(
    x: ArrayLike, axis: Axis = None, dtype: Any = None, *, keepdims: bool = False, initial: Any = None
) -> Var:
    """Product over ``axis`` (ints and bool multiply in int64, wrapping on overflow).

    >>> import mnn_expr as F
    >>> F.prod(F.array([1.0, 2.0, 3.0])).item()
    6.0
    """
    r = _reduce("reduce_prod", x, axis, keepdims, dtype)
    return r if initial is None else r * initial


def mean(x: ArrayLike, axis: Axis = None, dtype: Any = None, *, keepdims: bool = False) -> Var:
    """Arithmetic mean over ``axis`` (ints and bool give float32; an empty axis gives NaN).

    >>> import mnn_expr as F
    >>> F.mean(F.array([1, 2, 3, 4])).item()
    2.5
    """
    return _reduce("reduce_mean", x, axis, keepdims, dtype)


def _minmax(prim: str, x: ArrayLike, axis: Axis, keepdims: bool, initial: Any) -> Var:
    x = asarray(x)
    if initial is None:
        return _reduce(prim, x, axis, keepdims)
    axes = _axes(x, axis, prim)
    if _count(x, axes) == 0:
        return full(_out_shape(x, axes, keepdims), initial, x.dtype)
    r = _reduce(prim, x, axis, keepdims)
    return _native.binary("maximum" if prim == "reduce_max" else "minimum", r, initial)


def max(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False, initial: Any = None) -> Var:  # noqa: A001
    """Largest element over ``axis``; NaN wins.  An empty axis raises ValueError unless ``initial`` is given.

    >>> import mnn_expr as F
    >>> F.max(F.array([[1, 5], [3, 2]]), axis=0).tolist()
    [3, 5]
    """
    return _minmax("reduce_max", x, axis, keepdims, initial)


def min(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False, initial: Any = None) -> Var:  # noqa: A001
    """Smallest element over ``axis``; NaN wins.  An empty axis raises ValueError unless ``initial`` is given.

    >>> import mnn_expr as F
    >>> F.min(F.array([[1, 5], [3, 2]]), axis=1).tolist()
    [1, 2]
    """
    return _minmax("reduce_min", x, axis, keepdims, initial)


amax = max
amin = min


def any(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:  # noqa: A001
    """Whether any element over ``axis`` is nonzero (True); an empty axis gives False.

    >>> import mnn_expr as F
    >>> F.any(F.array([0, 0, 3])).item()
    True
    """
    return _reduce("reduce_any", x, axis, keepdims)


def all(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:  # noqa: A001
    """Whether every element over ``axis`` is nonzero (True); an empty axis gives True.

    >>> import mnn_expr as F
    >>> F.all(F.array([1, 0, 3])).item()
    False
    """
    return _reduce("reduce_all", x, axis, keepdims)


def _arg(prim: str, x: ArrayLike, axis: Optional[int], keepdims: bool) -> Var:
    x = asarray(x)
    if axis is None:
        r = apply1(prim, [_flatten(x)], axis=0, keepdims=False)
        return apply1("reshape", [r], shape=[1] * x.ndim) if keepdims else r
    if x.ndim == 0:
        raise ValueError(f"{prim}: axis {axis} is out of range for a 0-d input (use axis=None)")
    return apply1(prim, [x], axis=normalize_axis(axis, x.ndim, prim), keepdims=builtins.bool(keepdims))


def argmax(x: ArrayLike, axis: Optional[int] = None, *, keepdims: bool = False) -> Var:
    """Index (int64) of the first largest element along ``axis``; ``None`` indexes the flattened input.

    NaN counts as the largest.  (MNN's ``argmax(x, axis=0)`` defaults to axis 0.)

    >>> import mnn_expr as F
    >>> F.argmax(F.array([[1, 5], [7, 2]]), axis=1).tolist(), F.argmax(F.array([[1, 5], [7, 2]])).item()
    ([1, 0], 2)
    """
    return _arg("argmax", x, axis, keepdims)


def argmin(x: ArrayLike, axis: Optional[int] = None, *, keepdims: bool = False) -> Var:
    """Index (int64) of the first smallest element along ``axis``; ``None`` indexes the flattened input.

    >>> import mnn_expr as F
    >>> F.argmin(F.array([3, 1, 1])).item()
    1
    """
    return _arg("argmin", x, axis, keepdims)


def _as_float(x: ArrayLike, dtype: Any = None) -> Var:
    x = asarray(x)
    if dtype is not None:
        return _native.cast(x, as_dtype(dtype).name)
    return x if x.dtype.is_floating else _native.cast(x, "float32")


def var(
    x: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    *,
    ddof: float = 0,
    keepdims: bool = False,
    correction: Optional[float] = None,
) -> Var:
    """Variance ``sum((x - mean)**2) / (n - ddof)`` over ``axis`` (ints compute in float32).

    >>> import mnn_expr as F
    >>> F.var(F.array([1.0, 2.0, 3.0, 4.0])).item()
    1.25
    """
    if correction is not None:
        ddof = correction
    x = _as_float(x, dtype)
    axes = _axes(x, axis, "var")
    if axes is not None and not axes:
        d = x - x
        return d * d / builtins.max(1 - ddof, 0)
    prim_axes = [] if axes is None else axes
    m = apply1("reduce_mean", [x], axes=prim_axes, keepdims=True)
    d = x - m
    s = apply1("reduce_sum", [d * d], axes=prim_axes, keepdims=builtins.bool(keepdims))
    return s / builtins.max(_count(x, axes) - ddof, 0)


def std(
    x: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    *,
    ddof: float = 0,
    keepdims: bool = False,
    correction: Optional[float] = None,
) -> Var:
    """Standard deviation: ``sqrt(var(x, axis, ddof=ddof))``.

    >>> import mnn_expr as F
    >>> F.std(F.array([1.0, 3.0])).item()
    1.0
    """
    return _native.unary("sqrt", var(x, axis, dtype, ddof=ddof, keepdims=keepdims, correction=correction))


def logsumexp(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:
    """``log(sum(exp(x)))`` over ``axis``, computed stably by shifting with the maximum.

    An empty axis gives -inf; ints compute in float32.

    >>> import mnn_expr as F
    >>> round(F.logsumexp(F.array([1000.0, 1000.0])).item(), 3)
    1000.693
    """
    x = _as_float(x)
    axes = _axes(x, axis, "logsumexp")
    if axes is not None and not axes:
        return x + 0
    if _count(x, axes) == 0:
        return full(_out_shape(x, axes, keepdims), -math.inf, x.dtype)
    prim_axes = [] if axes is None else axes
    m = apply1("reduce_max", [x], axes=prim_axes, keepdims=True)
    m = _native.where(_native.unary("isfinite", m), m, 0)  # +-inf and NaN rows: no shift
    s = apply1("reduce_sum", [_native.unary("exp", x - m)], axes=prim_axes, keepdims=builtins.bool(keepdims))
    if not keepdims:  # reducing the size-1 axes of m drops them
        m = apply1("reduce_max", [m], axes=prim_axes, keepdims=False)
    return _native.unary("log", s) + m


def ptp(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:
    """Range ``max - min`` over ``axis`` ("peak to peak").

    >>> import mnn_expr as F
    >>> F.ptp(F.array([4, 9, 2])).item()
    7
    """
    x = asarray(x)
    return max(x, axis, keepdims=keepdims) - min(x, axis, keepdims=keepdims)


def count_nonzero(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:
    """Number (int64) of nonzero elements over ``axis`` (NaN counts as nonzero).

    >>> import mnn_expr as F
    >>> F.count_nonzero(F.array([[0, 1], [2, 0]]), axis=0).tolist()
    [1, 1]
    """
    x = asarray(x)
    return _reduce("reduce_sum", _native.cast(x, "bool"), axis, keepdims)


def _nan_to(x: Var, value: float) -> Var:
    return _native.where(_native.unary("isnan", x), value, x) if x.dtype.is_floating else x


def nansum(x: ArrayLike, axis: Axis = None, dtype: Any = None, *, keepdims: bool = False) -> Var:
    """Sum over ``axis`` treating NaN as zero.

    >>> import mnn_expr as F
    >>> F.nansum(F.array([1.0, float("nan"), 2.0])).item()
    3.0
    """
    return sum(_nan_to(asarray(x), 0), axis, dtype, keepdims=keepdims)


def nanmean(x: ArrayLike, axis: Axis = None, dtype: Any = None, *, keepdims: bool = False) -> Var:
    """Mean over ``axis`` ignoring NaN (all-NaN slices give NaN).

    >>> import mnn_expr as F
    >>> F.nanmean(F.array([1.0, float("nan"), 3.0])).item()
    2.0
    """
    x = asarray(x)
    if not x.dtype.is_floating:
        return mean(x, axis, dtype, keepdims=keepdims)
    if dtype is not None:
        x = _native.cast(x, as_dtype(dtype).name)
    valid = _native.unary("logical_not", _native.unary("isnan", x))
    n = _native.cast(_reduce("reduce_sum", valid, axis, keepdims), x.dtype.name)
    return _reduce("reduce_sum", _nan_to(x, 0), axis, keepdims) / n


def _nanminmax(prim: str, x: ArrayLike, axis: Axis, keepdims: bool) -> Var:
    x = asarray(x)
    if not x.dtype.is_floating:
        return _reduce(prim, x, axis, keepdims)
    fill = -math.inf if prim == "reduce_max" else math.inf
    r = _reduce(prim, _nan_to(x, fill), axis, keepdims)
    all_nan = _reduce("reduce_all", _native.unary("isnan", x), axis, keepdims)
    return _native.where(all_nan, math.nan, r)


def nanmax(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:
    """Largest element over ``axis`` ignoring NaN (all-NaN slices give NaN).

    >>> import mnn_expr as F
    >>> F.nanmax(F.array([1.0, float("nan"), 3.0])).item()
    3.0
    """
    return _nanminmax("reduce_max", x, axis, keepdims)


def nanmin(x: ArrayLike, axis: Axis = None, *, keepdims: bool = False) -> Var:
    """Smallest element over ``axis`` ignoring NaN (all-NaN slices give NaN).

    >>> import mnn_expr as F
    >>> F.nanmin(F.array([1.0, float("nan"), 3.0])).item()
    1.0
    """
    return _nanminmax("reduce_min", x, axis, keepdims)


def average(
    x: ArrayLike,
    axis: Axis = None,
    weights: ArrayLike = None,
    returned: bool = False,
    *,
    keepdims: bool = False,
) -> Any:
    """Weighted mean over ``axis``: ``sum(x * w) / sum(w)``; without weights, :func:`mean`.

    ``weights`` broadcasts against ``x``, or is 1-D along a single ``axis`` (as NumPy).
    With ``returned=True`` also returns the sum of the weights.

    >>> import mnn_expr as F
    >>> F.average(F.array([1.0, 2.0, 3.0]), weights=F.array([3.0, 1.0, 0.0])).item()
    1.25
    """
    x = asarray(x)
    if weights is None:
        avg = mean(x, axis, keepdims=keepdims)
        if not returned:
            return avg
        n = _count(x, _axes(x, axis, "average"))
        return avg, full(avg.shape, n, avg.dtype)
    x = _as_float(x)
    w = asarray(weights)
    if not w.dtype.is_floating:
        w = _native.cast(w, x.dtype.name)
    if w.shape != x.shape and w.ndim == 1 and x.ndim > 1:
        if not isinstance(axis, int):
            raise TypeError("average: axis must be an int when 1-D weights are given for an N-d input")
        ax = normalize_axis(axis, x.ndim, "average")
        if w.shape[0] != x.shape[ax]:
            raise ValueError(
                f"average: weights of length {w.shape[0]} do not match axis {axis} of shape {x.shape}"
            )
        w = apply1("reshape", [w], shape=[x.shape[ax] if i == ax else 1 for i in range(x.ndim)])
    w = w + zeros_like(x, dtype=w.dtype)  # broadcast the weights to x's shape
    scl = sum(w, axis, keepdims=keepdims)
    avg = sum(x * w, axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def moments(x: ArrayLike, axes: Axis = (2, 3), shift: Any = None, keep_dims: bool = True) -> list:
    """``[mean, variance]`` over ``axes`` (MNN's ``moments``; any rank and axes here).

    >>> import mnn_expr as F
    >>> m, v = F.moments(F.array([[1.0, 3.0]]), axes=[1])
    >>> m.tolist(), v.tolist()
    ([[2.0]], [[1.0]])
    """
    x = _as_float(x)
    axes = list(axes) if isinstance(axes, (list, tuple)) else axes
    return [mean(x, axes, keepdims=keep_dims), var(x, axes, keepdims=keep_dims)]


# ---- cumulative ---------------------------------------------------------------------------


def _scan(prim: str, x: ArrayLike, axis: Optional[int], dtype: Any, exclusive: bool, reverse: bool) -> Var:
    x = asarray(x)
    if dtype is not None:
        x = _native.cast(x, as_dtype(dtype).name)
    if axis is None:
        x, axis = _flatten(x), 0
    elif x.ndim == 0:
        raise ValueError(f"{prim}: axis {axis} is out of range for a 0-d input (use axis=None)")
    r = apply1(
        prim,
        [x],
        axis=normalize_axis(axis, x.ndim, prim),
        exclusive=builtins.bool(exclusive),
        reverse=builtins.bool(reverse),
    )
    if dtype is not None and r.dtype != as_dtype(dtype):
        r = _native.cast(r, as_dtype(dtype).name)
    return r


def cumsum(
    x: ArrayLike,
    axis: Optional[int] = None,
    dtype: Any = None,
    *,
    exclusive: bool = False,
    reverse: bool = False,
) -> Var:
    """Cumulative sum along ``axis`` (``None``: of the flattened input); ints and bool give int64.

    ``exclusive`` starts each run at 0 (``[0, x0, x0+x1, ...]``); ``reverse`` accumulates from the end.
    (MNN's ``cumsum(x, axis=0)`` defaults to axis 0.)

    >>> import mnn_expr as F
    >>> F.cumsum(F.array([1, 2, 3])).tolist(), F.cumsum(F.array([1, 2, 3]), 0, exclusive=True).tolist()
    ([1, 3, 6], [0, 1, 3])
    """
    return _scan("cumsum", x, axis, dtype, exclusive, reverse)


def cumprod(
    x: ArrayLike,
    axis: Optional[int] = None,
    dtype: Any = None,
    *,
    exclusive: bool = False,
    reverse: bool = False,
) -> Var:
    """Cumulative product along ``axis`` (``None``: of the flattened input); ints and bool give int64.

    >>> import mnn_expr as F
    >>> F.cumprod(F.array([1.0, 2.0, 3.0])).tolist()
    [1.0, 2.0, 6.0]
    """
    return _scan("cumprod", x, axis, dtype, exclusive, reverse)


# ---- MNN spellings: axis=[] reduces every axis ---------------------------------------------


def _mnn_axis(axis: Any) -> Axis:
    if axis is None:
        return None
    if isinstance(axis, int) or hasattr(axis, "__index__") and not isinstance(axis, (list, tuple)):
        return int(axis)
    axis = list(axis)
    return None if not axis else axis


def reduce_sum(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_sum``: :func:`sum` where ``axis=[]`` reduces every axis.

    >>> import mnn_expr as F
    >>> F.reduce_sum(F.array([[1.0, 2.0], [3.0, 4.0]]), [1]).tolist()
    [3.0, 7.0]
    """
    return _reduce("reduce_sum", x, _mnn_axis(axis), keepdims)


def reduce_mean(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_mean``: :func:`mean` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_mean", x, _mnn_axis(axis), keepdims)


def reduce_max(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_max``: :func:`max` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_max", x, _mnn_axis(axis), keepdims)


def reduce_min(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_min``: :func:`min` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_min", x, _mnn_axis(axis), keepdims)


def reduce_prod(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_prod``: :func:`prod` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_prod", x, _mnn_axis(axis), keepdims)


def reduce_any(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_any``: :func:`any` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_any", x, _mnn_axis(axis), keepdims)


def reduce_all(x: ArrayLike, axis: Any = (), keepdims: bool = False) -> Var:
    """MNN's ``reduce_all``: :func:`all` where ``axis=[]`` reduces every axis."""
    return _reduce("reduce_all", x, _mnn_axis(axis), keepdims)


# ---- method forms -------------------------------------------------------------------------

attach(
    sum=sum,
    mean=mean,
    prod=prod,
    max=max,
    min=min,
    any=any,
    all=all,
    argmax=argmax,
    argmin=argmin,
    var=var,
    std=std,
    cumsum=cumsum,
    cumprod=cumprod,
)
