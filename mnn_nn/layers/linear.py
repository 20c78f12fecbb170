"""Linear layers: ``Linear``, ``Identity``, ``Flatten`` and MNN's ``linear`` factory."""

from __future__ import annotations

from typing import Any

import mnn_expr as F
from mnn_expr import Var

from ..module import Module
from ._util import default_bias, default_weight, float_var

__all__ = ["Linear", "Identity", "Flatten", "Unflatten", "linear"]


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` [out, in] (PyTorch's default init).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Linear(3, 2)(F.ones([5, 3])).shape
    (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = "float32") -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = default_weight((out_features, in_features), in_features, dtype)
        self.bias = default_bias(out_features, in_features, dtype) if bias else None

    def forward(self, x: Any) -> Var:
        return F.linear(float_var(x), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def linear(in_channels: int, out_channels: int, bias: bool = True) -> Linear:
    """MNN's factory ``nn.linear(in_channels, out_channels, bias=True)`` (a :class:`Linear`)."""
    return Linear(in_channels, out_channels, bias)


class Identity(Module):
    """Returns its input unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one (default: all but the batch dim).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Flatten()(F.ones([2, 3, 4])).shape
    (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        nd = x.ndim
        if nd == 0:
            return F.reshape(x, [1])
        s, e = self.start_dim % nd, self.end_dim % nd
        if s > e:
            raise ValueError(f"Flatten: start_dim {self.start_dim} is after end_dim {self.end_dim} for shape "
                             f"{x.shape}")
        shape = list(x.shape[:s]) + [-1 if 0 not in x.shape else 0] + list(x.shape[e + 1:])
        if 0 in x.shape:
            n = 1
            for d in x.shape[s:e + 1]:
                n *= d
            shape[s] = n
        return F.reshape(x, shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        d = self.dim % x.ndim
        return F.reshape(x, list(x.shape[:d]) + list(self.unflattened_size) + list(x.shape[d + 1:]))
