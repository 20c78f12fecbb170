"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose2d`` and MNN's ``conv`` factory.

``padding`` is an int, a tuple, ``'valid'`` or ``'same'`` (output = ceil(input /
stride), extra padding at the end — PyTorch's rule for stride 1, TensorFlow's
for larger strides, where PyTorch refuses).  ``padding_mode`` is ``'zeros'``,
``'reflect'``, ``'replicate'`` or ``'circular'`` (the input is padded first, as
PyTorch does).
"""

from __future__ import annotations

import math
from typing import Any

import mnn_expr as F
from mnn_expr import Var
from mnn_expr.nn_ops import _pads

from ..module import Module
from ._util import default_bias, default_weight, float_var, tup

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "conv"]

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _check_common(in_channels: int, out_channels: int, groups: int, padding_mode: str, name: str) -> None:
    if groups <= 0 or in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                         f"divisible by groups ({groups})")
    if padding_mode != "zeros" and padding_mode not in _NP_MODES:
        raise ValueError(f"{name}: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', "
                         f"got {padding_mode!r}")


class Conv2d(Module):
    """2-d convolution over NCHW input, weight [out, in / groups, kh, kw] (PyTorch's default init).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Conv2d(3, 8, 3, padding="same")(F.ones([1, 3, 10, 10])).shape
    (1, 8, 10, 10)
    """

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype: Any = "float32") -> None:
        super().__init__()
        name = type(self).__name__
        nd = self._nd
        _check_common(in_channels, out_channels, groups, padding_mode, name)
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = tup(kernel_size, nd, f"{name}: kernel_size")
        self.stride = tup(stride, nd, f"{name}: stride")
        self.dilation = tup(dilation, nd, f"{name}: dilation")
        if isinstance(padding, str):
            if padding.lower() not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid' or ints, got {padding!r}")
            self.padding: Any = padding.lower()
        else:
            self.padding = tup(padding, nd, f"{name}: padding")
        self.padding_mode = padding_mode
        fan_in = (in_channels // groups) * math.prod(self.kernel_size)
        self.weight = default_weight((out_channels, in_channels // groups) + self.kernel_size, fan_in, dtype)
        self.bias = default_bias(out_channels, fan_in, dtype) if bias else None

    def _conv(self, x: Var, weight: Var, k: tuple, s: tuple, d: tuple, padding: Any) -> Var:
        hw = (x.shape[-2], x.shape[-1])
        pads = _pads(padding, None, hw, list(k), list(s), list(d), type(self).__name__)  # [t, l, b, r]
        if self.padding_mode != "zeros" and any(pads):
            widths = [(0, 0)] * (x.ndim - 2) + [(pads[0], pads[2]), (pads[1], pads[3])]
            x = F.pad(x, widths, mode=_NP_MODES[self.padding_mode])
            pads = [0, 0, 0, 0]
        return F.conv2d(x, weight, self.bias, stride=list(s), padding=pads, dilation=list(d), groups=self.groups)

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"Conv2d: expected a [N, C, H, W] or [C, H, W] input, got shape {x.shape}")
        padding = self.padding if isinstance(self.padding, str) else \
            (self.padding[0], self.padding[1], self.padding[0], self.padding[1])
        return self._conv(x, self.weight, self.kernel_size, self.stride, self.dilation, padding)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0,) * self._nd, "valid"):
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv1d(Conv2d):
    """1-d convolution over [N, C, L] input, weight [out, in / groups, k].

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Conv1d(2, 4, 3)(F.ones([1, 2, 9])).shape
    (1, 4, 7)
    """

    _nd = 1

    def forward(self, x: Any) -> Var:
        x = float_var(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"Conv1d: expected a [N, C, L] or [C, L] input, got shape {x.shape}")
        x4 = F.expand_dims(x, x.ndim - 1)
        w4 = F.expand_dims(self.weight, 2)
        p = self.padding if isinstance(self.padding, str) else (0, self.padding[0], 0, self.padding[0])
        y = self._conv(x4, w4, (1,) + self.kernel_size, (1,) + self.stride, (1,) + self.dilation, p)
        return F.squeeze(y, y.ndim - 2)


class ConvTranspose2d(Module):
    """Transposed 2-d convolution, weight [in, out / groups, kh, kw] (PyTorch's arguments and init).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)(F.ones([1, 4, 5, 5])).shape
    (1, 2, 10, 10)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros", dtype: Any = "float32") -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        _check_common(in_channels, out_channels, groups, padding_mode, "ConvTranspose2d")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = tup(kernel_size, 2, "ConvTranspose2d: kernel_size")
        self.stride = tup(stride, 2, "ConvTranspose2d: stride")
        self.padding = tup(padding, 2, "ConvTranspose2d: padding")
        self.output_padding = tup(output_padding, 2, "ConvTranspose2d: output_padding")
        self.dilation = tup(dilation, 2, "ConvTranspose2d: dilation")
        fan_in = (out_channels // groups) * math.prod(self.kernel_size)  # PyTorch's fan of weight dim 1
        self.weight = default_weight((in_channels, out_channels // groups) + self.kernel_size, fan_in, dtype)
        self.bias = default_bias(out_channels, fan_in, dtype) if bias else None

    def forward(self, x: Any) -> Var:
        return F.conv_transpose2d(float_var(x), self.weight, self.bias, stride=list(self.stride),
                                  padding=list(self.padding), output_padding=list(self.output_padding),
                                  groups=self.groups, dilation=list(self.dilation))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}")


def conv(in_channels: int, out_channels: int, kernel_size: Any, stride: Any = (1, 1), padding: Any = (0, 0),
         dilation: Any = (1, 1), depthwise: bool = False, bias: bool = True, padding_mode: Any = "VALID") -> Conv2d:
    """MNN's factory ``nn.conv(...)``: a :class:`Conv2d`.

    MNN's ``padding_mode``: ``VALID`` (the default: no padding, ``padding`` is
    ignored), ``SAME`` (output = ceil(input / stride)) or ``CAFFE`` (use
    ``padding``).  ``depthwise=True`` gives ``groups=in_channels``.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.conv(3, 8, [3, 3])(F.ones([1, 3, 8, 8])).shape
    (1, 8, 6, 6)
    """
    mode = str(getattr(padding_mode, "name", padding_mode)).upper()
    if mode.endswith("VALID"):
        pad: Any = "valid"
    elif mode.endswith("SAME"):
        pad = "same"
    elif mode.endswith("CAFFE"):
        pad = padding
    else:
        raise ValueError(f"conv: padding_mode must be VALID, SAME or CAFFE, got {padding_mode!r}")
    groups = in_channels if depthwise else 1
    return Conv2d(in_channels, out_channels, kernel_size, stride, pad, dilation, groups, bias)
