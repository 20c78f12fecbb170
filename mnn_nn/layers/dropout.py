"""``Dropout`` and MNN's ``dropout`` factory."""

from __future__ import annotations

from typing import Any

import mnn_expr as F
from mnn_expr import Var

from ..module import Module
from ._util import float_var

__all__ = ["Dropout", "dropout"]


def dropout_fn(x: Any, p: float = 0.5, training: bool = True, generator: Any = None) -> Var:
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)`` when training.

    The mask is drawn from ``mnn_expr.random`` (seed it with ``mnn_expr.random.seed``)
    or from ``generator``.
    """
    x = float_var(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    g = generator if generator is not None else F.random
    mask = g.bernoulli(1.0 - p, size=tuple(x.shape), dtype=x.dtype)
    return x * mask * (1.0 / (1.0 - p))


class Dropout(Module):
    """Dropout in training mode, the identity in eval mode.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Dropout(0.5).eval()(F.ones([3])).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Any) -> Var:
        return dropout_fn(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(dropout_ratio: float) -> Dropout:
    """MNN's factory ``nn.dropout(dropout_ratio)`` (a :class:`Dropout`)."""
    return Dropout(dropout_ratio)
