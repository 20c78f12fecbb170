"""Sorting: sort, argsort, topk, msort.

Sorts are stable: equal elements keep their order.  NaN counts as the largest
value, so it goes last in an ascending sort (as NumPy) and first in a
descending sort or a largest-k :func:`topk` (as PyTorch).  Indices are int64.

>>> import mnn_expr as F
>>> x = F.array([3.0, 1.0, 2.0])
>>> F.sort(x).tolist(), F.argsort(x).tolist(), [v.tolist() for v in F.topk(x, 2)]
([1.0, 2.0, 3.0], [1, 2, 0], [[3.0, 2.0], [0, 2]])
"""

from __future__ import annotations

from typing import Any, Optional

from ._core import apply, apply1, normalize_axis
from ._native import Var
from ._var import attach
from .creation import asarray

ArrayLike = Any

__all__ = ["sort", "argsort", "topk", "msort"]

_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _sort(x: ArrayLike, axis: Optional[int], descending: bool, op: str) -> list:
    x = asarray(x)
    if axis is None:
        x, axis = (x if x.ndim == 1 else apply1("reshape", [x], shape=[-1])), 0
    elif x.ndim == 0:
        raise ValueError(f"{op}: axis {axis} is out of range for a 0-d input (use axis=None)")
    return apply("sort", [x], axis=normalize_axis(axis, x.ndim, op), descending=bool(descending))


def _check_kind(kind: Any, order: Any, op: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"{op}: kind must be one of {_KINDS[1:]}, got {kind!r} (every sort here is stable)")
    if order is not None:
        raise ValueError(f"{op}: 'order' (sorting structured arrays by field) is not supported")


def sort(
    x: ArrayLike,
    axis: Optional[int] = -1,
    kind: Any = None,
    order: Any = None,
    *,
    descending: bool = False,
    stable: Optional[bool] = None,
    arg: bool = False,
    descend: Optional[bool] = None,
) -> Var:
    """Sorted copy of ``x`` along ``axis`` (``None``: of the flattened input); stable, NaN last.

    ``descending=True`` sorts largest first (NaN first), keeping equal elements in order.
    MNN's ``sort(x, axis, arg, descend)`` also works, positionally or by keyword:
    ``arg=True`` returns the indices instead of the values.

    >>> import mnn_expr as F
    >>> F.sort(F.array([[3, 1, 2]]), descending=True).tolist(), F.sort(F.array([2, 9, 1]), 0, True).tolist()
    ([[3, 2, 1]], [2, 0, 1])
    """
    if isinstance(kind, bool):  # MNN: sort(x, axis, arg, descend)
        arg, kind = kind, None
    if isinstance(order, bool):
        descend, order = order, None
    _check_kind(kind, order, "sort")
    if descend is not None:
        descending = descend
    values, indices = _sort(x, axis, descending, "sort")
    return indices if arg else values


def argsort(
    x: ArrayLike,
    axis: Optional[int] = -1,
    kind: Any = None,
    order: Any = None,
    *,
    descending: bool = False,
    stable: Optional[bool] = None,
) -> Var:
    """Indices (int64) that sort ``x`` along ``axis`` (``None``: the flattened input); stable, NaN last.

    >>> import mnn_expr as F
    >>> F.argsort(F.array([3, 1, 2, 1])).tolist(), F.argsort(F.array([3, 1, 2]), descending=True).tolist()
    ([1, 3, 2, 0], [0, 2, 1])
    """
    _check_kind(kind, order, "argsort")
    return _sort(x, axis, descending, "argsort")[1]


def msort(x: ArrayLike) -> Var:
    """Sorted copy along the first axis (``sort(x, axis=0)``)."""
    return sort(x, axis=0)


def topk(x: ArrayLike, k: int, axis: int = -1, largest: bool = True, sorted: bool = True) -> tuple:  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``axis`` and their int64 indices, in order.

    Ties go to the lower index; NaN counts as the largest.  ``0 <= k <= x.shape[axis]``,
    else ValueError.  (``sorted`` is accepted for PyTorch compatibility; results are always sorted.)

    >>> import mnn_expr as F
    >>> v, i = F.topk(F.array([1, 5, 3, 5]), 2)
    >>> v.tolist(), i.tolist()
    ([5, 5], [1, 3])
    """
    x = asarray(x)
    if x.ndim == 0:
        raise ValueError("topk: expected an input with at least one dimension, got a 0-d Var")
    if not isinstance(k, int) and not hasattr(k, "__index__"):
        raise TypeError(f"topk: k must be an int, got {k!r}")
    values, indices = apply(
        "topk", [x], k=int(k), axis=normalize_axis(axis, x.ndim, "topk"), largest=bool(largest)
    )
    return values, indices


attach(argsort=argsort)
