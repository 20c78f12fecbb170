"""Gradient clipping by total norm and by value (functional: new gradient lists are returned).

>>> import numpy as np, mnn_expr as F, mnn_optim as optim
>>> norm, grads = optim.clip_grad_norm_([np.array([3.0, 4.0], np.float32)], max_norm=1.0)
>>> round(float(norm), 4), grads[0].read().astype(float).round(4).tolist()
(5.0, [0.6, 0.8])
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

import mnn_expr as F

Var = F.Var


def _as_var(g: Any) -> Any:
    if g is None or isinstance(g, Var):
        return g
    return F.array(np.ascontiguousarray(np.asarray(g)))


def _grad_list(grads: Any) -> list:
    if isinstance(grads, Var) or isinstance(grads, np.ndarray):
        return [_as_var(grads)]
    return [_as_var(g) for g in grads]


def _norm(g: Var, norm_type: float) -> Var:
    if math.isinf(norm_type):
        return F.amax(F.abs(g)) if norm_type > 0 else F.min(F.abs(g))
    if norm_type == 2:
        return F.sqrt(F.sum(g * g))
    if norm_type == 1:
        return F.sum(F.abs(g))
    return F.sum(F.abs(g) ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(grads: Sequence[Any], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> tuple[Var, list]:
    """Scales the gradients so their total ``norm_type``-norm is at most ``max_norm`` (torch semantics).

    Returns ``(total_norm, clipped)``: the total norm of the inputs (a 0-d Var) and a new
    list of gradients multiplied by ``min(1, max_norm / (total_norm + 1e-6))``; ``None``
    entries stay ``None``.  Unlike torch nothing is modified in place (Vars are values).

    >>> import numpy as np, mnn_expr as F
    >>> norm, g = clip_grad_norm_([np.ones(4, np.float32)], 1.0)
    >>> round(float(norm), 4)
    2.0
    """
    gs = _grad_list(grads)
    present = [g for g in gs if g is not None]
    norm_type = float(norm_type)
    if not present:
        return F.array(0.0), gs
    dtype = present[0].dtype
    norms = F.stack([_norm(g, norm_type).astype(dtype) for g in present])
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not bool(F.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is non-finite ({float(total)})")
    coef = F.minimum(max_norm / (total + 1e-6), 1.0)
    return total, [None if g is None else g * coef.astype(g.dtype) for g in gs]


def clip_grad_value_(grads: Sequence[Any], clip_value: float) -> list:
    """Clips every gradient element into ``[-clip_value, clip_value]``; returns a new list.

    >>> import numpy as np
    >>> clip_grad_value_([np.array([-3.0, 0.5, 2.0], np.float32)], 1.0)[0].read().tolist()
    [-1.0, 0.5, 1.0]
    """
    c = float(clip_value)
    return [None if g is None else F.clip(g, -c, c) for g in _grad_list(grads)]


clip_grad_norm = clip_grad_norm_
clip_grad_value = clip_grad_value_
