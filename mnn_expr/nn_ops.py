"""Neural-network ops: convolution, transposed convolution, pooling, softmax, linear.

Layout is NCHW (a 3-d input is one unbatched CHW image).  Arguments follow
PyTorch (``conv2d(x, weight, bias, stride, padding, dilation, groups)``) and
MNN's keywords are accepted too (``dilate``, ``group``, ``padding_mode`` with
``"VALID"`` / ``"SAME"`` / ``"CAFFE"``; ``max_pool`` / ``avg_pool``).
``padding`` is an int, ``(ph, pw)``, ``(top, left, bottom, right)``, ``"valid"``
or ``"same"`` (TensorFlow's SAME: output = ceil(input / stride), extra padding
at the bottom / right; any stride).

>>> import mnn_expr as F
>>> F.conv2d(F.ones([1, 3, 8, 8]), F.ones([4, 3, 3, 3]), padding=1).shape
(1, 4, 8, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._core import apply1, normalize_axis
from ._dtype import as_dtype, promote_types
from ._native import Var
from .creation import asarray

ArrayLike = Any

__all__ = [
    "conv2d", "conv2d_transpose", "conv_transpose2d", "max_pool2d", "avg_pool2d", "max_pool", "avg_pool",
    "global_max_pool", "global_avg_pool", "adaptive_avg_pool2d", "softmax", "log_softmax", "layer_norm", "linear",
    "Padding_Mode", "CAFFE", "VALID", "SAME",
]


class Padding_Mode:  # noqa: N801  (MNN's name)
    """MNN's padding modes: ``CAFFE`` (explicit pads), ``VALID`` (none), ``SAME`` (ceil(in / stride) out)."""

    CAFFE = "CAFFE"
    VALID = "VALID"
    SAME = "SAME"


CAFFE, VALID, SAME = Padding_Mode.CAFFE, Padding_Mode.VALID, Padding_Mode.SAME


# ---- argument normalisation ------------------------------------------------------------


def _pair(v: Any, name: str, op: str) -> list[int]:
    if isinstance(v, (int, np.integer)):
        return [int(v), int(v)]
    try:
        vals = [int(x) for x in v]
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}") from None
    if len(vals) == 1:
        return vals * 2
    if len(vals) != 2:
        raise ValueError(f"{op}: {name} must have 1 or 2 values, got {v!r}")
    return vals


def _mode(padding_mode: Any) -> str | None:
    if padding_mode is None:
        return None
    name = getattr(padding_mode, "name", padding_mode)
    if isinstance(name, (int, np.integer)):  # MNN enum values: CAFFE=0, VALID=1, SAME=2
        name = ("CAFFE", "VALID", "SAME")[int(name)]
    name = str(name).upper()
    if name not in ("CAFFE", "VALID", "SAME"):
        raise ValueError(f"padding_mode must be CAFFE, VALID or SAME, got {padding_mode!r}")
    return name


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    eff = d * (k - 1) + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _pads(padding: Any, padding_mode: Any, hw: tuple, kernel: list, stride: list, dilation: list,
          op: str) -> list[int]:
    """[top, left, bottom, right] from PyTorch- or MNN-style arguments."""
    mode = _mode(padding_mode)
    if isinstance(padding, str):
        mode = {"valid": "VALID", "same": "SAME"}.get(padding.lower())
        if mode is None:
            raise ValueError(f"{op}: padding must be 'valid', 'same' or numbers, got {padding!r}")
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode == "SAME":
        t, b = _same_pads(hw[0], kernel[0], stride[0], dilation[0])
        left, r = _same_pads(hw[1], kernel[1], stride[1], dilation[1])
        return [t, left, b, r]
    if isinstance(padding, (int, np.integer)):
        return [int(padding)] * 4
    vals = [int(p) for p in padding]
    if len(vals) == 1:
        return vals * 4
    if len(vals) == 2:
        return [vals[0], vals[1], vals[0], vals[1]]
    if len(vals) == 4:
        return vals
    raise ValueError(f"{op}: padding must be an int, (ph, pw) or (top, left, bottom, right), got {padding!r}")


def _float_operands(*xs: Any) -> list:
    """The given operands (None kept) as Vars of one float dtype (integers and bools -> float32)."""
    vs = [None if x is None else asarray(x) for x in xs]
    dt = None
    for v in vs:
        if v is not None:
            dt = v.dtype if dt is None else promote_types(dt, v.dtype)
    if dt is None or not dt.is_floating:
        dt = as_dtype("float32")
    return [None if v is None else (v if v.dtype == dt else _native.cast(v, dt.name)) for v in vs]


def _spatial(x: Var, op: str) -> tuple[int, int]:
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 4-d [N, C, H, W] (or 3-d [C, H, W]) input, got shape {x.shape}")
    return x.shape[-2], x.shape[-1]


# ---- convolution -------------------------------------------------------------------------


def conv2d(x: ArrayLike, weight: ArrayLike, bias: ArrayLike = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, padding_mode: Any = None, *, dilate: Any = None,
           group: int | None = None) -> Var:
    """2-d convolution (cross-correlation) of NCHW ``x`` with ``weight`` [O, C / groups, kh, kw].

    ``bias`` [O] is optional.  MNN's ``dilate`` / ``group`` / ``padding_mode``
    are accepted (``padding_mode="VALID"`` ignores ``padding``, ``"SAME"`` pads
    to ceil(input / stride)).  Integer inputs compute in float32.

    >>> import mnn_expr as F
    >>> F.conv2d(F.ones([1, 2, 5, 5]), F.ones([4, 2, 3, 3]), stride=2).shape
    (1, 4, 2, 2)
    """
    if dilate is not None:
        dilation = dilate
    if group is not None:
        groups = group
    x, weight, bias = _float_operands(x, weight, bias)
    op = "conv2d"
    hw = _spatial(x, op)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-d [O, C / groups, kh, kw], got shape {weight.shape}")
    s, d = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    pads = _pads(padding, padding_mode, hw, list(weight.shape[2:]), s, d, op)
    inputs = [x, weight] if bias is None else [x, weight, bias]
    return apply1("conv2d", inputs, stride=s, pads=pads, dilation=d, groups=int(groups))


def _deconv_pads(padding: Any, padding_mode: Any, hw: tuple, kernel: list, s: list, d: list, op: str,
                 output_padding: list) -> tuple[list[int], list[int]]:
    mode = _mode(padding_mode)
    if isinstance(padding, str):
        mode = {"valid": "VALID", "same": "SAME"}.get(padding.lower())
        if mode is None:
            raise ValueError(f"{op}: padding must be 'valid', 'same' or numbers, got {padding!r}")
    if mode == "SAME":  # output = input * stride (TensorFlow / MNN)
        pads, op_pad = [], []
        for i in range(2):
            total = (hw[i] - 1) * s[i] + d[i] * (kernel[i] - 1) + 1 - hw[i] * s[i]
            extra = max(-total, 0)
            total = max(total, 0)
            pads.append((total // 2, total - total // 2))
            op_pad.append(extra)
        return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]], op_pad
    if mode == "VALID":
        return [0, 0, 0, 0], output_padding
    return _pads(padding, None, hw, kernel, s, d, op), output_padding


def conv2d_transpose(x: ArrayLike, weight: ArrayLike, bias: ArrayLike = None, stride: Any = 1,
                     padding: Any = 0, dilate: Any = 1, group: int = 1, padding_mode: Any = None, *,
                     output_padding: Any = 0, dilation: Any = None, groups: int | None = None) -> Var:
    """Transposed 2-d convolution (MNN's argument order; ``weight`` [C_in, O / groups, kh, kw]).

    Output size: ``(H - 1) * stride - pad_top - pad_bottom + dilation * (kh - 1) + output_padding + 1``.
    PyTorch's argument order is :func:`conv_transpose2d`.

    >>> import mnn_expr as F
    >>> F.conv2d_transpose(F.ones([1, 4, 3, 3]), F.ones([4, 2, 3, 3]), stride=2).shape
    (1, 2, 7, 7)
    """
    if dilation is not None:
        dilate = dilation
    if groups is not None:
        group = groups
    x, weight, bias = _float_operands(x, weight, bias)
    op = "conv2d_transpose"
    hw = _spatial(x, op)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-d [C_in, O / groups, kh, kw], got shape {weight.shape}")
    s, d = _pair(stride, "stride", op), _pair(dilate, "dilation", op)
    opad = _pair(output_padding, "output_padding", op)
    pads, opad = _deconv_pads(padding, padding_mode, hw, list(weight.shape[2:]), s, d, op, opad)
    inputs = [x, weight] if bias is None else [x, weight, bias]
    return apply1("conv2d_transpose", inputs, stride=s, pads=pads, dilation=d, groups=int(group),
                  output_padding=opad)


def conv_transpose2d(x: ArrayLike, weight: ArrayLike, bias: ArrayLike = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Var:
    """Transposed 2-d convolution with PyTorch's argument order (see :func:`conv2d_transpose`).

    >>> import mnn_expr as F
    >>> w = F.ones([4, 2, 3, 3])
    >>> F.conv_transpose2d(F.ones([1, 4, 3, 3]), w, stride=2, padding=1, output_padding=1).shape
    (1, 2, 6, 6)
    """
    return conv2d_transpose(x, weight, bias, stride, padding, dilation, groups, output_padding=output_padding)


def linear(x: ArrayLike, weight: ArrayLike, bias: ArrayLike = None) -> Var:
    """``x @ weight.T + bias`` with ``weight`` [out, in] (PyTorch's ``linear``).

    >>> import mnn_expr as F
    >>> F.linear(F.ones([5, 3]), F.ones([2, 3]), F.zeros([2])).shape
    (5, 2)
    """
    x, weight, bias = _float_operands(x, weight, bias)
    if weight.ndim not in (1, 2):
        raise ValueError(f"linear: weight must be 1-d or 2-d [out, in], got shape {weight.shape}")
    y = apply1("matmul", [x, weight], transpose_a=False, transpose_b=weight.ndim == 2)
    return y if bias is None else _native.binary("add", y, bias)


# ---- pooling -------------------------------------------------------------------------------


def _pool_args(x: Var, kernel_size: Any, stride: Any, padding: Any, dilation: Any, padding_mode: Any,
               op: str) -> tuple[list, list, list, list]:
    hw = _spatial(x, op)
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (not isinstance(stride, (int, np.integer)) and len(stride) == 0) else \
        _pair(stride, "stride", op)
    d = _pair(dilation, "dilation", op)
    return k, s, d, _pads(padding, padding_mode, hw, k, s, d, op)


def max_pool2d(x: ArrayLike, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, padding_mode: Any = None) -> Var:
    """Max pooling over windows of ``kernel_size`` (stride defaults to the kernel; padding
    is -inf; NaN propagates).  ``ceil_mode`` keeps a last partial window that starts
    inside the input or the leading padding (PyTorch's rule).

    >>> import mnn_expr as F
    >>> F.max_pool2d(F.ones([1, 1, 4, 4]), 2).shape
    (1, 1, 2, 2)
    """
    x = asarray(x)
    k, s, d, pads = _pool_args(x, kernel_size, stride, padding, dilation, padding_mode, "max_pool2d")
    return apply1("max_pool2d", [x], kernel=k, stride=s, pads=pads, dilation=d, ceil_mode=bool(ceil_mode))


def avg_pool2d(x: ArrayLike, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, padding_mode: Any = None) -> Var:
    """Average pooling over windows of ``kernel_size`` (stride defaults to the kernel).

    ``count_include_pad`` counts the zero padding in the divisor (PyTorch's
    default).  Integer inputs compute in float32.

    >>> import mnn_expr as F
    >>> F.avg_pool2d(F.ones([1, 1, 4, 4]), 2, padding=1, count_include_pad=False).tolist()[0][0][0]
    [1.0, 1.0, 1.0]
    """
    (x,) = _float_operands(x)
    k, s, _, pads = _pool_args(x, kernel_size, stride, padding, 1, padding_mode, "avg_pool2d")
    return apply1("avg_pool2d", [x], kernel=k, stride=s, pads=pads, ceil_mode=bool(ceil_mode),
                  count_include_pad=bool(count_include_pad))


def max_pool(x: ArrayLike, kernel: Any, stride: Any, padding_mode: Any = VALID, pads: Any = (0, 0)) -> Var:
    """MNN's ``max_pool(x, kernel, stride, padding_mode=VALID, pads=(0, 0))``."""
    mode = _mode(padding_mode)
    return max_pool2d(x, kernel, stride, pads if mode == "CAFFE" else 0, padding_mode=mode)


def avg_pool(x: ArrayLike, kernel: Any, stride: Any, padding_mode: Any = VALID, pads: Any = (0, 0)) -> Var:
    """MNN's ``avg_pool(x, kernel, stride, padding_mode=VALID, pads=(0, 0))`` (SAME / VALID
    average over the input only; CAFFE pads count, as Caffe)."""
    mode = _mode(padding_mode)
    return avg_pool2d(x, kernel, stride, pads if mode == "CAFFE" else 0, count_include_pad=mode == "CAFFE",
                      padding_mode=mode)


def global_max_pool(x: ArrayLike) -> Var:
    """Max over each channel's whole image: [N, C, H, W] -> [N, C, 1, 1].

    >>> import mnn_expr as F
    >>> F.global_max_pool(F.ones([2, 3, 4, 5])).shape
    (2, 3, 1, 1)
    """
    x = asarray(x)
    h, w = _spatial(x, "global_max_pool")
    return apply1("max_pool2d", [x], kernel=[h, w], stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1],
                  ceil_mode=False)


def global_avg_pool(x: ArrayLike) -> Var:
    """Mean over each channel's whole image: [N, C, H, W] -> [N, C, 1, 1].

    >>> import mnn_expr as F
    >>> F.global_avg_pool(F.ones([2, 3, 4, 5])).shape
    (2, 3, 1, 1)
    """
    (x,) = _float_operands(x)
    h, w = _spatial(x, "global_avg_pool")
    return apply1("avg_pool2d", [x], kernel=[h, w], stride=[1, 1], pads=[0, 0, 0, 0], ceil_mode=False,
                  count_include_pad=True)


def _adaptive_matrix(n_in: int, n_out: int, dtype: Any) -> np.ndarray:
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m.astype(dtype)


def adaptive_avg_pool2d(x: ArrayLike, output_size: Any) -> Var:
    """Average pooling to a fixed output size (PyTorch's windows: floor(i * H / oh) to
    ceil((i + 1) * H / oh)); ``None`` in ``output_size`` keeps that size.

    >>> import mnn_expr as F
    >>> F.adaptive_avg_pool2d(F.ones([1, 2, 5, 7]), (2, 3)).shape
    (1, 2, 2, 3)
    """
    (x,) = _float_operands(x)
    op = "adaptive_avg_pool2d"
    h, w = _spatial(x, op)
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    oh, ow = [(h, w)[i] if v is None else int(v) for i, v in enumerate(output_size)]
    if oh <= 0 or ow <= 0 or (h == 0 and oh) or (w == 0 and ow):
        raise ValueError(f"{op}: cannot pool an input of shape {x.shape} to {(oh, ow)}")
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return apply1("avg_pool2d", [x], kernel=[kh, kw], stride=[kh, kw], pads=[0, 0, 0, 0], ceil_mode=False,
                      count_include_pad=True)
    # General sizes: pooling is linear, out = P_h @ x @ P_w^T.
    np_dt = x.dtype.numpy
    pw = asarray(_adaptive_matrix(w, ow, np_dt), x.dtype)
    ph = asarray(_adaptive_matrix(h, oh, np_dt), x.dtype)
    y = apply1("matmul", [x, pw], transpose_a=False, transpose_b=True)
    return apply1("matmul", [ph, y], transpose_a=False, transpose_b=False)


# ---- softmax ---------------------------------------------------------------------------------


def _softmax(op: str, x: ArrayLike, axis: int) -> Var:
    (x,) = _float_operands(x)
    if x.ndim == 0:  # one element: a row of one
        return apply1("reshape", [apply1(op, [apply1("reshape", [x], shape=[1])], axis=0)], shape=[])
    return apply1(op, [x], axis=normalize_axis(axis, x.ndim, op))


def layer_norm(x: ArrayLike, axis: int = -1, eps: float = 1e-5) -> Var:
    """``(x - mean) / sqrt(var + eps)`` over the dims from ``axis`` on (biased variance; one
    primitive: a native pass per row).  Scale and shift are elementwise (``* w + b``).

    >>> import mnn_expr as F
    >>> [round(v, 4) for v in F.layer_norm(F.array([1.0, 2.0, 3.0])).tolist()]
    [-1.2247, 0.0, 1.2247]
    """
    (x,) = _float_operands(x)
    if x.ndim == 0:
        raise ValueError("layer_norm: expected at least 1 dimension, got a 0-d Var")
    return apply1("layer_norm", [x], axis=normalize_axis(axis, x.ndim, "layer_norm"), eps=float(eps))


def softmax(x: ArrayLike, axis: int = -1) -> Var:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed stably (the max is subtracted first).

    One primitive (one native pass per row); a row whose max is not finite subtracts 0.

    >>> import mnn_expr as F
    >>> [round(v, 4) for v in F.softmax(F.array([1.0, 2.0, 3.0])).tolist()]
    [0.09, 0.2447, 0.6652]
    """
    return _softmax("softmax", x, axis)


def log_softmax(x: ArrayLike, axis: int = -1) -> Var:
    """``x - log(sum(exp(x)))`` along ``axis``, computed stably (one primitive, like softmax).

    >>> import mnn_expr as F
    >>> [round(v, 4) for v in F.log_softmax(F.array([0.0, 0.0])).tolist()]
    [-0.6931, -0.6931]
    """
    return _softmax("log_softmax", x, axis)
