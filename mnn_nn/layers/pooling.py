"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` (PyTorch's arguments)."""

from __future__ import annotations

from typing import Any

import mnn_expr as F
from mnn_expr import Var

from ..module import Module
from ._util import float_var

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class MaxPool2d(Module):
    """Max pooling (stride defaults to the kernel; -inf padding; ``ceil_mode`` as PyTorch).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.MaxPool2d(2)(F.ones([1, 1, 4, 4])).shape
    (1, 1, 2, 2)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Var:
        return F.max_pool2d(float_var(x), self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling (``count_include_pad`` counts zero padding, PyTorch's default)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Any) -> Var:
        return F.avg_pool2d(float_var(x), self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` (PyTorch's windows).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.AdaptiveAvgPool2d((1, 1))(F.ones([2, 3, 5, 7])).shape
    (2, 3, 1, 1)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Var:
        return F.adaptive_avg_pool2d(float_var(x), self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
