"""ONNX op handlers for sequence and optional values.

An ONNX sequence is a Python list of Vars, an optional holds its value (a Var or a
sequence) or is :data:`~mnn_nn.deploy.onnx_import.EMPTY_OPTIONAL`.  Positions and split
sizes are read (they decide which tensors exist); the tensors themselves never are.

>>> from mnn_nn.deploy.onnx_import import SUPPORTED_OPS
>>> {"SequenceConstruct", "SplitToSequence", "OptionalHasElement"} <= SUPPORTED_OPS
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

import mnn_expr as F

from .onnx_import import EMPTY_OPTIONAL, NodeCall, register
from .onnx_ops import const, norm_axis, reshape


def _seq(n: NodeCall, i: int) -> list:
    s = n.x(i)
    if not isinstance(s, list):
        raise n.error(f"input {i} must be a sequence, got {type(s).__name__}")
    return s


def _position(n: NodeCall, i: int, length: int, insert: bool = False) -> int:
    """Input ``i`` as a position in a sequence of ``length`` (negative counts from the end)."""
    p = int(np.asarray(n.value(i)).reshape(-1)[0])
    hi = length if insert else length - 1
    if not -length <= p <= hi:
        raise n.error(f"position {p} is out of range for a sequence of length {length}")
    return p + length if p < 0 else p


@register("SequenceEmpty", fold=False)
def _sequence_empty(n: NodeCall) -> list:
    return [[]]


@register("SequenceConstruct", fold=False)
def _sequence_construct(n: NodeCall) -> list:
    return [[v for v in n.inputs]]


@register("SequenceInsert", fold=False)
def _sequence_insert(n: NodeCall) -> list:
    s = list(_seq(n, 0))
    pos = _position(n, 2, len(s), insert=True) if n.has(2) else len(s)
    s.insert(pos, n.x(1))
    return [s]


@register("SequenceErase", fold=False)
def _sequence_erase(n: NodeCall) -> list:
    s = list(_seq(n, 0))
    del s[_position(n, 1, len(s)) if n.has(1) else len(s) - 1]
    return [s]


@register("SequenceAt", fold=False)
def _sequence_at(n: NodeCall) -> list:
    s = _seq(n, 0)
    return [s[_position(n, 1, len(s))]]


@register("SequenceLength", fold=False)
def _sequence_length(n: NodeCall) -> Any:
    return const(np.array(len(_seq(n, 0)), np.int64))


@register("ConcatFromSequence", fold=False)
def _concat_from_sequence(n: NodeCall) -> Any:
    s = _seq(n, 0)
    if not s:
        raise n.error("cannot concatenate an empty sequence")
    new_axis = bool(n.attr("new_axis", 0))
    axis = norm_axis(n.attr("axis"), s[0].ndim + (1 if new_axis else 0), n)
    return F.stack(s, axis=axis) if new_axis else F.concatenate(s, axis)


@register("SplitToSequence", fold=False)
def _split_to_sequence(n: NodeCall) -> list:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", 0), x.ndim, n)
    size = x.shape[axis]
    if not n.has(1):
        parts = F.split(x, size_splits=[1] * size, axis=axis)
        if not n.attr("keepdims", 1):
            parts = [reshape(p, [d for i, d in enumerate(p.shape) if i != axis]) for p in parts]
        return [parts]
    split = np.asarray(n.value(1))
    if split.ndim == 0:
        chunk = int(split)
        sizes = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    else:
        sizes = [int(v) for v in split.reshape(-1)]
    if sum(sizes) != size:
        raise n.error(f"split sizes {sizes} do not add up to the axis size {size}")
    return [F.split(x, size_splits=sizes, axis=axis)]


@register("SequenceMap", fold=False)
def _sequence_map(n: NodeCall) -> list:
    """Runs the body once per position of the sequence inputs (tensor inputs are passed whole)."""
    body = n.attr("body")
    first = _seq(n, 0)
    outs: list = [[] for _ in body.output]
    for i in range(len(first)):
        args = [v[i] if isinstance(v, list) else v for v in n.inputs]
        res, _ = n.run_graph(body, args)
        for k, r in enumerate(res):
            outs[k].append(r)
    return outs


@register("Optional", fold=False)
def _optional(n: NodeCall) -> Any:
    return [n.x(0) if n.has(0) else EMPTY_OPTIONAL]


@register("OptionalHasElement", fold=False)
def _optional_has_element(n: NodeCall) -> Any:
    v = n.x(0)
    return const(np.array(v is not None and v is not EMPTY_OPTIONAL))


@register("OptionalGetElement", fold=False)
def _optional_get_element(n: NodeCall) -> Any:
    v = n.x(0)
    if v is None or v is EMPTY_OPTIONAL:
        raise n.error("the optional input holds no value")
    return [v]
