"""Activation modules (PyTorch's names and arguments) over the ``mnn_expr`` functions."""

from __future__ import annotations

from typing import Any

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from ..module import Module, Parameter
from ._util import float_var

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softplus",
           "Softsign", "Softmax", "LogSoftmax", "Hardtanh", "Mish", "softplus_beta"]


class _Act(Module):
    _fn: Any = None

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Var:
        return type(self)._fn(float_var(x))


class ReLU(_Act):
    """``max(x, 0)``.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.ReLU()(F.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    _fn = staticmethod(F.relu)


class ReLU6(_Act):
    """``min(max(x, 0), 6)``."""

    _fn = staticmethod(F.relu6)


class SELU(_Act):
    """Scaled ELU with PyTorch's constants."""

    _fn = staticmethod(F.selu)


class SiLU(_Act):
    """``x * sigmoid(x)``."""

    _fn = staticmethod(F.silu)


class Sigmoid(_Act):
    """``1 / (1 + exp(-x))``."""

    _fn = staticmethod(F.sigmoid)


class Tanh(_Act):
    """Hyperbolic tangent."""

    _fn = staticmethod(F.tanh)


class Softsign(_Act):
    """``x / (1 + |x|)``."""

    _fn = staticmethod(F.softsign)


class Mish(_Act):
    """``x * tanh(softplus(x))``."""

    _fn = staticmethod(lambda x: x * F.tanh(F.softplus(x)))


class LeakyReLU(Module):
    """``x`` for x >= 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Var:
        return F.leaky_relu(float_var(x), self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Hardtanh(Module):
    """``clip(x, min_val, max_val)``."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Any) -> Var:
        return F.clip(float_var(x), self.min_val, self.max_val)


class PReLU(Module):
    """Leaky ReLU with a learned slope (one, or one per channel at dim 1), initialised to ``init``.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.PReLU()(F.array([-1.0, 2.0])).tolist()
    [-0.25, 2.0]
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype: Any = "float32") -> None:
        super().__init__()
        self.num_parameters = int(num_parameters)
        self.weight = Parameter(np.full(self.num_parameters, init), dtype)

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        w = self.weight
        if self.num_parameters > 1:
            if x.ndim < 2 or x.shape[1] != self.num_parameters:
                raise ValueError(f"PReLU: {self.num_parameters} slopes need {self.num_parameters} channels at "
                                 f"dim 1, got shape {x.shape}")
            w = F.reshape(w, [1, self.num_parameters] + [1] * (x.ndim - 2))
        elif x.ndim == 0:
            w = F.reshape(w, [])
        return F.where(x >= 0, x, w * x)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Any) -> Var:
        return F.elu(float_var(x), self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """Gaussian error linear unit: exact (``approximate='none'``) or the tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        return F.gelu(x) if self.approximate == "none" else F.gelu_tanh(x)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


def softplus_beta(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Var:
    """PyTorch's softplus: ``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.layers.softplus_beta(F.array([100.0])).tolist()
    [100.0]
    """
    x = float_var(x)
    bx = x * beta if beta != 1 else x
    sp = F.softplus(bx)
    if beta != 1:
        sp = sp / beta
    return F.where(bx > threshold, x, sp)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta`` (linear above ``threshold``, as PyTorch)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Any) -> Var:
        return softplus_beta(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along ``dim`` (PyTorch's default for ``dim=None``: 0 for 0-, 1- and 3-d input, else 1)."""

    def __init__(self, dim: Any = None) -> None:
        super().__init__()
        self.dim = dim

    def _axis(self, x: Var) -> int:
        if self.dim is not None:
            return self.dim
        return 0 if x.ndim in (0, 1, 3) else 1

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        return F.softmax(x, self._axis(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along ``dim``."""

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        return F.log_softmax(x, self._axis(x))


