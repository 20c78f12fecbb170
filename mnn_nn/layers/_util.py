"""Helpers shared by the layers: parameter creation with PyTorch's default init."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .. import init
from ..module import Parameter


def param(shape: Any, dtype: Any = "float32") -> Var:
    """A new trainable Var of zeros with ``shape``."""
    return Parameter(np.zeros(tuple(int(s) for s in shape)), dtype)


def uniform_param(shape: Any, bound: float, dtype: Any = "float32") -> Var:
    """A trainable Var drawn from U(-bound, bound)."""
    p = param(shape, dtype)
    init.uniform_(p, -bound, bound)
    return p


def default_weight(shape: Any, fan_in: int, dtype: Any = "float32") -> Var:
    """PyTorch's default Linear/Conv weight: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    p = param(shape, dtype)
    if int(np.prod(shape)):
        init.kaiming_uniform_(p, a=math.sqrt(5))
    return p


def default_bias(n: int, fan_in: int, dtype: Any = "float32") -> Var:
    """PyTorch's default bias: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_param((n,), bound, dtype)


def tup(v: Any, n: int, name: str) -> tuple:
    """An int or a length-``n`` sequence as an ``n``-tuple of ints."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    t = tuple(int(x) for x in v)
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise ValueError(f"{name} must be an int or {n} ints, got {v!r}")
    return t


def float_var(x: Any) -> Var:
    """``x`` as a Var (array-likes converted)."""
    return x if isinstance(x, Var) else F.asarray(x)
