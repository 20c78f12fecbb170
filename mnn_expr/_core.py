"""The bridge to the native core: op table access and ``apply``.

Every op front end in mnn_expr calls :func:`apply` (or the promoting helpers
``unary``/``binary``/``where`` of the native module); attribute names and
types are checked natively against the op table in ``native/include/mnn/ops.def``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from . import _native
from ._native import Var


class OpInfo(NamedTuple):
    """One row of the native op table."""

    name: str
    cpp_name: str
    category: str
    n_inputs: int
    n_outputs: int
    attrs: tuple  # (name, type, has_default) triples
    has_shape_rule: bool
    has_kernel: bool


OP_TABLE: dict[str, OpInfo] = {
    row[0]: OpInfo(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), row[6], row[7])
    for row in _native.op_table()
}


def apply(op: str, inputs: Sequence[Any], **attrs: Any) -> list[Var]:
    """Applies primitive ``op`` to ``inputs`` (Vars or array-likes) and returns its outputs.

    >>> import mnn_expr as F
    >>> apply("reshape", [F.arange(6)], shape=[2, 3])[0].shape
    (2, 3)
    """
    return _native.apply(op, list(inputs), attrs)


def apply1(op: str, inputs: Sequence[Any], **attrs: Any) -> Var:
    """:func:`apply` for single-output ops."""
    return _native.apply(op, list(inputs), attrs)[0]


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    """Maps a possibly negative axis into ``[0, ndim)``; raises ValueError naming ``op``."""
    if not isinstance(axis, (int,)) and not hasattr(axis, "__index__"):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1) or (ndim == 0 and axis not in (0, -1)):
        raise ValueError(f"{op}: axis {axis} is out of range for a {ndim}-d input")
    return axis % ndim if ndim else 0


def normalize_axes(axis: Any, ndim: int, op: str) -> list[int]:
    """``None`` -> every axis; an int or a sequence -> sorted unique non-negative axes."""
    if axis is None:
        return list(range(ndim))
    is_one = isinstance(axis, int) or (hasattr(axis, "__index__") and not isinstance(axis, (list, tuple)))
    axes = [axis] if is_one else list(axis)
    out = [normalize_axis(a, ndim, op) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return sorted(out)
