"""Inference passes on a traced :class:`~mnn_expr.graph_capture.Graph`, run by export.

- ``fold_constants``: a node whose inputs are all constants is computed once and becomes a
  constant (BatchNorm's ``sqrt(running_var + eps)``, reshapes of parameters, ...);
- ``fold_conv_affine``: a per-output-channel multiply, divide, add or subtract by a constant
  right after a ``conv2d`` with constant weights is folded into its weights and bias — with
  ``fold_constants`` first, an inference BatchNorm disappears into the convolution;
- ``dce``: nodes and constants no output needs are dropped.

Each pass is a function ``Graph -> int`` (what it changed) and can be left out of
:func:`optimize` (``export(..., optimize=False)`` runs none).

>>> import mnn_expr as F, mnn_nn as nn
>>> from mnn_nn.deploy.graph import trace
>>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()); _ = m.eval()
>>> g = trace(m, [F.ones((1, 3, 8, 8))])
>>> optimize(g)["fold_conv_affine"], [n.op for n in g.nodes]
(4, ['conv2d', 'relu'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

import mnn_expr as F
from mnn_expr import _native
from mnn_expr.graph_capture import Graph

__all__ = ["PASSES", "optimize", "fold_constants", "fold_conv_affine", "dce"]

_NOT_FOLDABLE = {"random_uniform", "random_normal"}


def _consumers(g: Graph) -> dict:
    users: dict = {}
    for n in g.nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    return users


def fold_constants(g: Graph) -> int:
    """Computes nodes whose inputs are all constants (not graph outputs, not random, no bodies)."""
    outputs = set(g.outputs)
    kept, folded = [], 0
    for n in g.nodes:
        foldable = (n.op not in _NOT_FOLDABLE and n.inputs and all(i in g.constants for i in n.inputs)
                    and not any(o in outputs for o in n.outputs)
                    and not any(isinstance(v, _native.SubGraph) for v in n.attrs.values()))
        if not foldable:
            kept.append(n)
            continue
        ins = [F.array(g.constants[i], dtype=g.values[i].dtype) for i in n.inputs]
        for o, v in zip(n.outputs, _native.apply(n.op, ins, dict(n.attrs))):
            g.constants[o] = np.array(v.numpy())
        folded += 1
    g.nodes = kept
    return folded


def _per_channel(c: np.ndarray, channels: int) -> Optional[np.ndarray]:
    """``c`` as one value per output channel of an NCHW conv result, if it broadcasts that way."""
    if c.ndim > 4 or c.size not in (1, channels):
        return None
    shape = (1,) * (4 - c.ndim) + c.shape
    if c.size == 1:
        return np.full(channels, c.reshape(()), np.float64)
    if shape[1] != channels or shape[0] != 1 or shape[2] != 1 or shape[3] != 1:
        return None
    return c.reshape(channels).astype(np.float64)


def fold_conv_affine(g: Graph) -> int:
    """Folds ``conv2d(...) (*|/|+|-) c`` (c a per-output-channel constant) into the conv's weights
    and bias, when the conv result has no other reader."""
    folded = 0
    changed = True
    while changed:
        changed = False
        users = _consumers(g)
        outputs = set(g.outputs)
        for conv in g.nodes:
            if conv.op != "conv2d" or conv.inputs[1] not in g.constants:
                continue
            if len(conv.inputs) > 2 and conv.inputs[2] not in g.constants:
                continue
            y = conv.outputs[0]
            readers = users.get(y, [])
            if y in outputs or len(readers) != 1 or g.values[y].dtype != "float32":
                continue
            nxt = readers[0]
            if nxt.op not in ("multiply", "divide", "add", "subtract") or len(nxt.inputs) != 2:
                continue
            k = 1 if nxt.inputs[0] == y else 0
            if nxt.inputs[1 - k] != y or nxt.inputs[k] not in g.constants or nxt.inputs[k] == y:
                continue
            if nxt.op in ("divide", "subtract") and k == 0:
                continue  # c / conv, c - conv: not affine in the conv's weights
            w = g.constants[conv.inputs[1]].astype(np.float64)
            cout = w.shape[0]
            c = _per_channel(np.asarray(g.constants[nxt.inputs[k]]), cout)
            if c is None or g.values[nxt.outputs[0]].shape != g.values[y].shape:
                continue
            b = g.constants[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 else np.zeros(cout)
            if nxt.op == "multiply":
                w, b = w * c[:, None, None, None], b * c
            elif nxt.op == "divide":
                w, b = w / c[:, None, None, None], b / c
            elif nxt.op == "add":
                b = b + c
            else:
                b = b - c
            wi = g.add_value(g.values[conv.inputs[1]].name, "float32", w.shape)
            bi = g.add_value(g.values[conv.inputs[2]].name if len(conv.inputs) > 2 else f"{conv.op}_bias", "float32",
                             (cout,))
            g.constants[wi], g.constants[bi] = w.astype(np.float32), b.astype(np.float32)
            conv.inputs = [conv.inputs[0], wi, bi]
            conv.outputs = [nxt.outputs[0]]  # the conv now computes the folded node's value
            g.nodes.remove(nxt)
            folded += 1
            changed = True
            break
    return folded


def dce(g: Graph) -> int:
    """Drops nodes and constants that no graph output (or state) needs."""
    needed = set(g.outputs) | set(g.states) | set(g.states.values()) | set(g.inputs)
    kept: list = []
    for n in reversed(g.nodes):
        if any(o in needed for o in n.outputs):
            kept.append(n)
            needed.update(n.inputs)
    dropped = len(g.nodes) - len(kept)
    g.nodes = kept[::-1]
    for i in [i for i in g.constants if i not in needed]:
        del g.constants[i]
        dropped += 1
    return dropped


PASSES = {"fold_constants": fold_constants, "fold_conv_affine": fold_conv_affine, "dce": dce}


def optimize(g: Graph, passes: Sequence[str] = tuple(PASSES)) -> dict:
    """Runs the named passes in order on ``g`` (in place); returns what each changed."""
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise ValueError(f"optimize: unknown passes {unknown} (known: {list(PASSES)})")
    return {p: PASSES[p](g) for p in passes}

