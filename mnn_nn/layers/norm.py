"""Normalisation layers: ``BatchNorm1d/2d``, ``LayerNorm``, ``GroupNorm`` and MNN's ``batch_norm``.

BatchNorm follows PyTorch: in training it normalises with the batch mean and
biased variance and updates ``running_mean`` / ``running_var`` (unbiased) as
``running = (1 - momentum) * running + momentum * batch`` (``momentum=None``:
cumulative average), counting ``num_batches_tracked``; in eval it uses the
running statistics.  MNN's ``batch_norm(momentum=0.99)`` means
``running = 0.99 * running + 0.01 * batch`` (PyTorch momentum 0.01).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from ..module import Module, Parameter
from ._util import float_var

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "batch_norm"]


def _normalize(x: Var, mean: Var, var: Var, eps: float) -> Var:
    return (x - mean) / F.sqrt(var + eps)


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = "float32") -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features), dtype)
            self.bias = Parameter(np.zeros(num_features), dtype)
        if track_running_stats:
            self.register_buffer("running_mean", F.zeros([num_features], dtype))
            self.register_buffer("running_var", F.ones([num_features], dtype))
            self.register_buffer("num_batches_tracked", F.zeros([], "int64"))

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, count 0."""
        if self.track_running_stats:
            self.running_mean._rebind(F.zeros([self.num_features], self.running_mean.dtype))
            self.running_var._rebind(F.ones([self.num_features], self.running_var.dtype))
            self.num_batches_tracked._rebind(F.zeros([], "int64"))

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        name = type(self).__name__
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected a {' or '.join(f'{d}-d' for d in self._ndims)} input with "
                             f"{self.num_features} channels at dim 1, got shape {x.shape}")
        bshape = [1, self.num_features] + [1] * (x.ndim - 2)
        axes = tuple(i for i in range(x.ndim) if i != 1)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = x.size // self.num_features if self.num_features else 0
            if n <= 1:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, got input "
                                 f"shape {x.shape}")
            mean = F.mean(x, axis=axes)
            var = F.var(x, axis=axes)
            if self.training and self.track_running_stats:
                self._update(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        y = _normalize(x, F.reshape(mean, bshape), F.reshape(var, bshape), self.eps)
        if self.affine:
            y = y * F.reshape(self.weight, bshape) + F.reshape(self.bias, bshape)
        return y

    def _update(self, mean: Var, var: Var, n: int) -> None:
        count = int(self.num_batches_tracked.item()) + 1
        self.num_batches_tracked._rebind(F.array(count, "int64"))
        m = 1.0 / count if self.momentum is None else float(self.momentum)
        dt = self.running_mean.dtype
        bm = np.asarray(mean.read(), np.float64)
        bv = np.asarray(var.read(), np.float64) * (n / (n - 1))
        rm = np.asarray(self.running_mean.read(), np.float64)
        rv = np.asarray(self.running_var.read(), np.float64)
        self.running_mean._rebind(F.array((1 - m) * rm + m * bm, dt))
        self.running_var._rebind(F.array((1 - m) * rv + m * bv, dt))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over [N, C] or [N, C, L] input.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.BatchNorm1d(3)(F.arange(12.0).reshape(4, 3)).shape
    (4, 3)
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over [N, C, H, W] input."""

    _ndims = (4,)


def batch_norm(channels: int, dims: int = 4, momentum: float = 0.99, epsilon: float = 1e-5) -> _BatchNorm:
    """MNN's factory ``nn.batch_norm(channels, dims=4, momentum=0.99, epsilon=1e-5)``.

    MNN's momentum keeps that share of the running statistics:
    ``running = momentum * running + (1 - momentum) * batch``.
    ``dims=4`` gives a :class:`BatchNorm2d`, ``dims=2`` or ``3`` a :class:`BatchNorm1d`.
    """
    cls = BatchNorm2d if dims == 4 else BatchNorm1d
    if dims not in (2, 3, 4):
        raise ValueError(f"batch_norm: dims must be 2, 3 or 4, got {dims}")
    return cls(channels, eps=epsilon, momentum=1.0 - momentum)


class LayerNorm(Module):
    """Normalises over the last ``len(normalized_shape)`` dims (biased variance), then scales and shifts.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.LayerNorm(4)(F.arange(8.0).reshape(2, 4)).shape
    (2, 4)
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype: Any = "float32") -> None:
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = float(eps), elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape), dtype) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape), dtype) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape or x.ndim < k:
            raise ValueError(f"LayerNorm: input shape {x.shape} does not end with {self.normalized_shape}")
        y = F.layer_norm(x, axis=x.ndim - k, eps=self.eps)  # one native pass per row
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalises each of ``num_groups`` channel groups of [N, C, ...] input, then per-channel affine.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.GroupNorm(2, 4)(F.ones([1, 4, 3, 3])).shape
    (1, 4, 3, 3)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype: Any = "float32") -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = int(num_groups), int(num_channels), eps, affine
        if affine:
            self.weight = Parameter(np.ones(num_channels), dtype)
            self.bias = Parameter(np.zeros(num_channels), dtype)

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected [N, {self.num_channels}, ...] input, got shape {x.shape}")
        g = F.reshape(x, [x.shape[0], self.num_groups, -1] if x.size else
                      [x.shape[0], self.num_groups, x.size // max(1, x.shape[0] * self.num_groups)])
        mean = F.mean(g, axis=2, keepdims=True)
        var = F.var(g, axis=2, keepdims=True)
        y = F.reshape(_normalize(g, mean, var, self.eps), list(x.shape))
        if self.affine:
            bshape = [1, self.num_channels] + [1] * (x.ndim - 2)
            y = y * F.reshape(self.weight, bshape) + F.reshape(self.bias, bshape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
