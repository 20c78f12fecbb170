"""Parameter initialisers (PyTorch's ``torch.nn.init``), in place on a Var.

Each function draws its values (from ``mnn_expr.random``'s global generator, so
``mnn_expr.random.seed(n)`` makes them reproducible, or from a
``numpy.random.Generator`` / ``mnn_expr.random.Generator`` passed as ``generator``),
then rebinds the Var to them (``_rebind``); a trainable Var stays trainable.
Each returns the Var.

>>> import mnn_expr as F, mnn_nn as nn
>>> w = nn.Parameter(F.zeros([4, 3]))
>>> _ = nn.init.constant_(w, 0.5)
>>> w.tolist()[0]
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "eye_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "trunc_normal_",
]


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for ``nonlinearity`` (PyTorch's values).

    >>> import mnn_nn as nn
    >>> round(nn.init.calculate_gain("relu"), 4), round(nn.init.calculate_gain("tanh"), 4)
    (1.4142, 1.6667)
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "sigmoid", "identity")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need a Var with at least 2 dims, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _draw(kind: str, shape: tuple, a: float, b: float, generator: Any) -> np.ndarray:
    """uniform(a, b) or normal(mean=a, std=b) values as float64 numpy."""
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, np.random.Generator):
        return generator.uniform(a, b, shape) if kind == "u" else generator.normal(a, b, shape)
    g = generator if generator is not None else F.random
    if kind == "u":
        return np.array(g.uniform(a, b, shape, dtype="float64").read(), dtype=np.float64)
    return np.array(g.normal(a, b, shape, dtype="float64").read(), dtype=np.float64)


def _set(t: Var, values: Any) -> Var:
    if not isinstance(t, Var):
        raise TypeError(f"init: expected a Var, got {type(t).__name__}")
    rg = bool(getattr(t, "requires_grad", False))
    arr = np.broadcast_to(np.asarray(values), tuple(t.shape)).astype(t.dtype.numpy)
    t._rebind(F.array(np.array(arr, order="C"), t.dtype))
    if rg:
        t.fix_as_trainable()
    return t


def uniform_(t: Var, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Var:
    """Fills ``t`` with U(a, b)."""
    return _set(t, _draw("u", t.shape, a, b, generator))


def normal_(t: Var, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Var:
    """Fills ``t`` with N(mean, std**2)."""
    return _set(t, _draw("n", t.shape, mean, std, generator))


def trunc_normal_(t: Var, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Any = None) -> Var:
    """Fills ``t`` with N(mean, std**2) redrawn until inside [a, b]."""
    vals = _draw("n", t.shape, mean, std, generator)
    for _ in range(100):
        bad = (vals < a) | (vals > b)
        if not bad.any():
            break
        vals[bad] = _draw("n", (int(bad.sum()),), mean, std, generator)
    return _set(t, np.clip(vals, a, b))


def constant_(t: Var, val: float) -> Var:
    """Fills ``t`` with ``val``."""
    return _set(t, val)


def zeros_(t: Var) -> Var:
    """Fills ``t`` with 0."""
    return _set(t, 0)


def ones_(t: Var) -> Var:
    """Fills ``t`` with 1."""
    return _set(t, 1)


def eye_(t: Var) -> Var:
    """Fills 2-d ``t`` with the identity."""
    if t.ndim != 2:
        raise ValueError(f"eye_: expected a 2-d Var, got shape {t.shape}")
    return _set(t, np.eye(*t.shape))


def xavier_uniform_(t: Var, gain: float = 1.0, generator: Any = None) -> Var:
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fi, fo = _fans(tuple(t.shape))
    a = gain * math.sqrt(6.0 / float(fi + fo))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t: Var, gain: float = 1.0, generator: Any = None) -> Var:
    """Glorot normal: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = _fans(tuple(t.shape))
    return normal_(t, 0.0, gain * math.sqrt(2.0 / float(fi + fo)), generator)


def _kaiming_std(t: Var, a: float, mode: str, nonlinearity: str) -> float:
    fi, fo = _fans(tuple(t.shape))
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fi if mode == "fan_in" else fo
    if fan == 0:
        return 0.0
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t: Var, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Any = None) -> Var:
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Var, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Any = None) -> Var:
    """He normal: N(0, std**2), std = gain / sqrt(fan)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


def orthogonal_(t: Var, gain: float = 1.0, generator: Any = None) -> Var:
    """A (semi-)orthogonal matrix (of ``t`` viewed as [rows, rest]) times ``gain``."""
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: expected a Var with at least 2 dims, got shape {t.shape}")
    rows = int(t.shape[0])
    cols = int(np.prod(t.shape)) // max(rows, 1)
    flat = _draw("n", (rows, cols), 0.0, 1.0, generator)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _set(t, (gain * q).reshape(tuple(t.shape)))
