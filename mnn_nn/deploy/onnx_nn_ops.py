"""ONNX op handlers for network layers: convolution, pooling, normalisation, resize.

2-d convolution and pooling map onto the native ``conv2d`` / ``conv2d_transpose`` /
``max_pool2d`` / ``avg_pool2d`` primitives; 1-d ones run as 2-d with a height of 1;
3-d convolution is a sum of 2-d convolutions over the kernel's depth and 3-d pooling
is separable (a 2-d pool over height and width, then one over depth).  Normalisations
use the native ``layer_norm``.  Resize is separable: per resized axis one gather of
the taps (nearest: one tap) and, for linear / cubic, a weighted sum over them, the
indices and weights computed in numpy from the static shapes.

>>> from mnn_nn.deploy.onnx_import import SUPPORTED_OPS
>>> {"Conv", "MaxPool", "LayerNormalization", "Resize"} <= SUPPORTED_OPS
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .onnx_import import NodeCall, register
from .onnx_ops import const, norm_axis, prim, prod, reshape, same_dtype, scalar_like

# ---- geometry ------------------------------------------------------------------------------------------


def _auto_pads(auto: str, sizes: Sequence[int], k: Sequence[int], s: Sequence[int], d: Sequence[int],
               n: NodeCall) -> Optional[list]:
    """Begin pads + end pads for ``auto_pad`` SAME_UPPER / SAME_LOWER / VALID (None for NOTSET)."""
    if auto in ("NOTSET", ""):
        return None
    sd = len(sizes)
    if auto == "VALID":
        return [0] * (2 * sd)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.error(f"unknown auto_pad {auto!r}")
    begin, end = [], []
    for i in range(sd):
        out = -(-sizes[i] // s[i])
        total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - sizes[i], 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin + end


def _window_attrs(n: NodeCall, x: Var, kernel: Sequence[int]) -> tuple[list, list, list]:
    """strides, dilations and pads (begins + ends) of a conv / pool node."""
    sd = len(kernel)
    s = n.attr("strides") or [1] * sd
    d = n.attr("dilations") or [1] * sd
    pads = _auto_pads(n.attr("auto_pad", "NOTSET"), x.shape[2:], kernel, s, d, n)
    if pads is None:
        pads = n.attr("pads") or [0] * (2 * sd)
    if len(s) != sd or len(d) != sd or len(pads) != 2 * sd:
        raise n.error(f"strides {s}, dilations {d} and pads {pads} do not fit a {sd}-d kernel")
    return list(s), list(d), list(pads)


def _as_2d(x: Var) -> Var:
    """[N, C, L] -> [N, C, 1, L]."""
    return reshape(x, list(x.shape[:2]) + [1, x.shape[2]])


# ---- convolution -----------------------------------------------------------------------------------


def _conv2d(x: Var, w: Var, b: Optional[Var], s: list, d: list, pads: list, groups: int) -> Var:
    inputs = [x, w] if b is None else [x, w, b]
    return prim("conv2d", inputs, stride=s, pads=pads, dilation=d, groups=groups)


@register("Conv")
def _conv(n: NodeCall) -> Var:
    x, w, b = n.x(0), n.x(1), n.x(2)
    if not x.dtype.is_floating:
        raise n.fail(f"integer convolution ({x.dtype}) is not supported")
    w = same_dtype(w, x)
    b = None if b is None else same_dtype(b, x)
    sd = x.ndim - 2
    k = list(w.shape[2:])
    s, d, pads = _window_attrs(n, x, k)
    g = n.attr("group", 1)
    if sd == 2:
        return _conv2d(x, w, b, s, d, pads, g)
    if sd == 1:
        y = _conv2d(_as_2d(x), _as_2d(w), b, [1, s[0]], [1, d[0]], [0, pads[0], 0, pads[1]], g)
        return reshape(y, [y.shape[0], y.shape[1], y.shape[3]])
    if sd == 3:
        return _conv3d(x, w, b, s, d, pads, g)
    raise n.fail(f"{sd}-d convolution is not supported (1-d, 2-d and 3-d are)")


def _conv3d(x: Var, w: Var, b: Optional[Var], s: list, d: list, pads: list, g: int) -> Var:
    """3-d convolution as a sum over the kernel's depth of 2-d convolutions of strided depth slices."""
    N, C, D, H, W = x.shape
    kd = w.shape[2]
    if pads[0] or pads[3]:
        x = prim("pad", [x], pads=[0, 0, 0, 0, pads[0], pads[3], 0, 0, 0, 0], mode="constant", value=0.0)
    Dp = x.shape[2]
    od = (Dp - (kd - 1) * d[0] - 1) // s[0] + 1
    total = None
    for t in range(kd):
        start = t * d[0]
        xs = prim("slice", [x], begins=[0, 0, start, 0, 0], ends=[N, C, start + (od - 1) * s[0] + 1, H, W],
                  steps=[1, 1, s[0], 1, 1])
        xs = reshape(F.transpose(xs, [0, 2, 1, 3, 4]), [N * od, C, H, W])
        wt = reshape(prim("slice", [w], begins=[0, 0, t, 0, 0], ends=list(w.shape[:2]) + [t + 1] + list(w.shape[3:]),
                          steps=[1] * 5), list(w.shape[:2]) + list(w.shape[3:]))
        y = _conv2d(xs, wt, b if t == 0 else None, s[1:], d[1:], [pads[1], pads[2], pads[4], pads[5]], g)
        total = y if total is None else total + y
    M, OH, OW = total.shape[1:]
    return F.transpose(reshape(total, [N, od, M, OH, OW]), [0, 2, 1, 3, 4])


@register("ConvTranspose")
def _conv_transpose(n: NodeCall) -> Var:
    x, w, b = n.x(0), n.x(1), n.x(2)
    w = same_dtype(w, x)
    b = None if b is None else same_dtype(b, x)
    sd = x.ndim - 2
    if sd not in (1, 2, 3):
        raise n.fail(f"{sd}-d transposed convolution is not supported (1-d, 2-d and 3-d are)")
    k = list(w.shape[2:])
    s = n.attr("strides") or [1] * sd
    d = n.attr("dilations") or [1] * sd
    opad = n.attr("output_padding") or [0] * sd
    g = n.attr("group", 1)
    sizes = x.shape[2:]
    out_shape = n.attr("output_shape")
    auto = n.attr("auto_pad", "NOTSET")
    full = [s[i] * (sizes[i] - 1) + opad[i] + (k[i] - 1) * d[i] + 1 for i in range(sd)]
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        if out_shape is None:
            out_shape = [sizes[i] * s[i] for i in range(sd)]
        out_shape = list(out_shape)[-sd:]
        begin, end = [], []
        for i in range(sd):
            total = full[i] - out_shape[i]
            if auto == "SAME_UPPER":
                begin.append(total // 2)
                end.append(total - total // 2)
            else:
                begin.append(total - total // 2)
                end.append(total // 2)
        pads = begin + end
    elif auto == "VALID":
        pads = [0] * (2 * sd)
    else:
        pads = n.attr("pads") or [0] * (2 * sd)
    pos = [max(p, 0) for p in pads]
    if sd == 3:
        y = _conv_transpose3d(x, w, b, list(s), list(d), list(opad), pos, g)
    elif sd == 2:
        inputs = [x, w] if b is None else [x, w, b]
        y = prim("conv2d_transpose", inputs, stride=list(s), pads=pos, dilation=list(d), groups=g,
                 output_padding=list(opad))
    else:
        inputs = [_as_2d(x), _as_2d(w)] + ([] if b is None else [b])
        y = prim("conv2d_transpose", inputs, stride=[1, s[0]], pads=[0, pos[0], 0, pos[1]], dilation=[1, d[0]],
                 groups=g, output_padding=[0, opad[0]])
        y = reshape(y, [y.shape[0], y.shape[1], y.shape[3]])
    if any(p < 0 for p in pads):  # negative pads widen the output: zeros (plus the bias)
        grow = [(-min(pads[i], 0), -min(pads[i + sd], 0)) for i in range(sd)]
        y = prim("pad", [y], pads=[0, 0, 0, 0] + [v for pair in grow for v in pair], mode="constant", value=0.0)
        if b is not None:
            edge = np.ones(y.shape[2:], np.float32)
            edge[tuple(slice(lo, dim - hi) for (lo, hi), dim in zip(grow, y.shape[2:]))] = 0.0
            y = y + reshape(b, [1, -1] + [1] * sd) * const(edge, x.dtype.name)
    return y


def _conv_transpose3d(x: Var, w: Var, b: Optional[Var], s: list, d: list, opad: list, pads: list, g: int) -> Var:
    """3-d transposed convolution: per kernel depth, a 2-d one of every input slice, spread along depth."""
    N, C, D, H, W = x.shape
    kd = w.shape[2]
    full = (D - 1) * s[0] + (kd - 1) * d[0] + 1 + opad[0]
    x2 = reshape(F.transpose(x, [0, 2, 1, 3, 4]), [N * D, C, H, W])
    total = None
    for t in range(kd):
        wt = reshape(prim("slice", [w], begins=[0, 0, t, 0, 0], ends=list(w.shape[:2]) + [t + 1] + list(w.shape[3:]),
                          steps=[1] * 5), list(w.shape[:2]) + list(w.shape[3:]))
        y = prim("conv2d_transpose", [x2, wt], stride=s[1:], pads=[pads[1], pads[2], pads[4], pads[5]],
                 dilation=d[1:], groups=g, output_padding=opad[1:])
        M, OH, OW = y.shape[1:]
        y = reshape(y, [N, D, 1, M * OH * OW])
        if s[0] > 1:  # input slice i lands at depth i * stride
            y = prim("pad", [y], pads=[0, 0, 0, 0, 0, s[0] - 1, 0, 0], mode="constant", value=0.0)
            y = prim("slice", [reshape(y, [N, D * s[0], M * OH * OW])], begins=[0, 0, 0],
                     ends=[N, (D - 1) * s[0] + 1, M * OH * OW], steps=[1, 1, 1])
        else:
            y = reshape(y, [N, D, M * OH * OW])
        front = t * d[0]
        y = prim("pad", [y], pads=[0, 0, front, full - front - y.shape[1], 0, 0], mode="constant", value=0.0)
        total = y if total is None else total + y
    total = prim("slice", [total], begins=[0, pads[0], 0], ends=[N, full - pads[3], M * OH * OW], steps=[1, 1, 1])
    y = F.transpose(reshape(total, [N, total.shape[1], M, OH, OW]), [0, 2, 1, 3, 4])
    return y if b is None else y + reshape(b, [1, -1, 1, 1, 1])


# ---- pooling -------------------------------------------------------------------------------------------


def _pool_out(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool) -> int:
    span = (k - 1) * d + 1
    if ceil:
        out = -(-(size + pb + pe - span) // s) + 1
        if (out - 1) * s >= size + pb:  # a last window that would start in the end padding
            out -= 1
        return out
    return (size + pb + pe - span) // s + 1


def _window_taps(x: Var, k: list, s: list, d: list, pads: list, ceil: bool, fill: float) -> tuple[list, int, int]:
    """One strided slice of the padded input per kernel tap ([N, C, oh, ow] each), and the output size.

    The input is padded with ``fill`` by ``pads`` and, in ceil mode, by what the last window needs.
    """
    N, C, H, W = x.shape
    oh = _pool_out(H, k[0], s[0], d[0], pads[0], pads[2], ceil)
    ow = _pool_out(W, k[1], s[1], d[1], pads[1], pads[3], ceil)
    eh = max((oh - 1) * s[0] + (k[0] - 1) * d[0] + 1 - (H + pads[0] + pads[2]), 0)
    ew = max((ow - 1) * s[1] + (k[1] - 1) * d[1] + 1 - (W + pads[1] + pads[3]), 0)
    xp = prim("pad", [x], pads=[0, 0, 0, 0, pads[0], pads[2] + eh, pads[1], pads[3] + ew], mode="constant",
              value=fill)
    taps = []
    for i in range(k[0]):
        for j in range(k[1]):
            h0, w0 = i * d[0], j * d[1]
            ends = [N, C, h0 + (oh - 1) * s[0] + 1, w0 + (ow - 1) * s[1] + 1]
            taps.append(prim("slice", [xp], begins=[0, 0, h0, w0], ends=ends, steps=[1, 1, s[0], s[1]]))
    return taps, oh, ow


def _window_sum_2d(x: Var, k: list, s: list, d: list, pads: list, ceil: bool) -> Var:
    """Sum over (dilated) windows: a sum of strided slices of the zero-padded input."""
    taps, _, _ = _window_taps(x, k, s, d, pads, ceil, 0.0)
    total = taps[0]
    for t in taps[1:]:
        total = total + t
    return total


def _window_count_2d(H: int, W: int, k: list, s: list, d: list, pads: list, ceil: bool,
                     include_pad: bool) -> np.ndarray:
    """How many elements each window averages over (ONNX: within the padded input, or the input only)."""
    oh = _pool_out(H, k[0], s[0], d[0], pads[0], pads[2], ceil)
    ow = _pool_out(W, k[1], s[1], d[1], pads[1], pads[3], ceil)

    def axis_count(size: int, kk: int, ss: int, dd: int, pb: int, pe: int, o: int) -> np.ndarray:
        pos = np.arange(o)[:, None] * ss - pb + np.arange(kk)[None, :] * dd
        lo, hi = (-pb, size + pe) if include_pad else (0, size)
        return ((pos >= lo) & (pos < hi)).sum(axis=1)

    ch = axis_count(H, k[0], s[0], d[0], pads[0], pads[2], oh)
    cw = axis_count(W, k[1], s[1], d[1], pads[1], pads[3], ow)
    return (ch[:, None] * cw[None, :]).astype(np.float64)


def _lp_power(x: Var, p: int) -> Var:
    return F.abs(x) if p == 1 else (x * x if p == 2 else F.power(F.abs(x), float(p)))


def _lp_root(s: Var, p: int) -> Var:
    return s if p == 1 else (F.sqrt(s) if p == 2 else F.power(s, 1.0 / p))


def _pool2d(kind: str, x: Var, k: list, s: list, d: list, pads: list, ceil: bool, include_pad: bool) -> Var:
    """``kind`` max / avg / sum pooling of a 4-d input (the native primitives where they apply)."""
    fits = all((k[i] - 1) * d[i] + 1 <= x.shape[2 + i] + pads[i] + pads[i + 2] for i in range(2))
    if kind == "max" and not fits:  # a ceil-mode window wider than the padded input: max over the taps
        taps, _, _ = _window_taps(x, k, s, d, pads, ceil, -math.inf)
        y = taps[0]
        for t in taps[1:]:
            y = F.maximum(y, t)
        return y
    if kind == "max":
        return prim("max_pool2d", [x], kernel=k, stride=s, pads=pads, dilation=d, ceil_mode=ceil)
    if kind == "avg" and d == [1, 1] and fits:
        return prim("avg_pool2d", [x], kernel=k, stride=s, pads=pads, ceil_mode=ceil, count_include_pad=include_pad)
    total = _window_sum_2d(x, k, s, d, pads, ceil)
    if kind == "sum":
        return total
    count = _window_count_2d(x.shape[2], x.shape[3], k, s, d, pads, ceil, include_pad)  # dilated average
    return total / const(count, x.dtype.name)


def _pool_nd(kind: str, x: Var, k: list, s: list, d: list, pads: list, ceil: bool, include_pad: bool,
             n: NodeCall) -> Var:
    """Pooling of a 1-d, 2-d or 3-d input (3-d: separable, height and width first, then depth)."""
    sd = x.ndim - 2
    if sd == 2:
        return _pool2d(kind, x, k, s, d, pads, ceil, include_pad)
    if sd == 1:
        y = _pool2d(kind, _as_2d(x), [1, k[0]], [1, s[0]], [1, d[0]], [0, pads[0], 0, pads[1]], ceil, include_pad)
        return reshape(y, [y.shape[0], y.shape[1], y.shape[3]])
    if sd == 3:
        N, C, D, H, W = x.shape
        y = _pool2d(kind, reshape(x, [N, C * D, H, W]), k[1:], s[1:], d[1:], [pads[1], pads[2], pads[4], pads[5]],
                    ceil, include_pad)
        oh, ow = y.shape[2:]
        y = _pool2d(kind, reshape(y, [N, C, D, oh * ow]), [k[0], 1], [s[0], 1], [d[0], 1], [pads[0], 0, pads[3], 0],
                    ceil, include_pad)
        return reshape(y, [N, C, y.shape[2], oh, ow])
    raise n.fail(f"{sd}-d pooling is not supported (1-d, 2-d and 3-d are)")


def _max_pool_indices(x: Var, k: list, s: list, d: list, pads: list, ceil: bool, storage_order: int) -> list:
    """Max pooling of a 4-d input with ONNX's flat argmax indices (first maximum of each window)."""
    N, C, H, W = x.shape
    taps, oh, ow = _window_taps(x, k, s, d, pads, ceil, -math.inf)
    flat = []
    for i in range(k[0]):
        for j in range(k[1]):
            hh = np.arange(oh)[:, None] * s[0] - pads[0] + i * d[0]
            ww = np.arange(ow)[None, :] * s[1] - pads[1] + j * d[1]
            flat.append(hh * W + ww if storage_order == 0 else hh + ww * H)
    stacked = F.stack(taps, axis=-1)
    y = prim("reduce_max", [stacked], axes=[4], keepdims=False)
    which = prim("argmax", [stacked], axis=4, keepdims=True)
    table = const(np.stack(flat, axis=-1).reshape(1, 1, oh, ow, len(flat)), "int64")
    idx = prim("take_along_axis", [F.broadcast_to(table, [N, C, oh, ow, len(flat)]), which], axis=4)
    base = const((np.arange(N * C) * H * W).reshape(N, C, 1, 1), "int64")
    return [y, reshape(idx, [N, C, oh, ow]) + base]


@register("MaxPool", "AveragePool", "LpPool")
def _pool(n: NodeCall) -> Any:
    x = n.x(0)
    k = list(n.attr("kernel_shape"))
    s, d, pads = _window_attrs(n, x, k)
    ceil = bool(n.attr("ceil_mode", 0))
    kind = {"MaxPool": "max", "AveragePool": "avg", "LpPool": "lp"}[n.op_type]
    sd = len(k)
    outs = [_pool_out(x.shape[2 + i], k[i], s[i], d[i], pads[i], pads[i + sd], ceil) for i in range(sd)]
    if min(outs) <= 0:  # the window does not fit: an empty result
        shape = list(x.shape[:2]) + [max(o, 0) for o in outs]
        empty = [const(np.zeros(shape), x.dtype.name)]
        return empty + [const(np.zeros(shape, np.int64))] if n.wants(1) else empty
    if kind == "max" and n.wants(1):
        if x.ndim == 3:
            y, i = _max_pool_indices(_as_2d(x), [1, k[0]], [1, s[0]], [1, d[0]], [0, pads[0], 0, pads[1]], ceil, 0)
            return [reshape(y, list(y.shape[:2]) + [y.shape[3]]), reshape(i, list(i.shape[:2]) + [i.shape[3]])]
        if x.ndim != 4:
            raise n.fail("MaxPool indices are supported for 1-d and 2-d pooling")
        return _max_pool_indices(x, k, s, d, pads, ceil, n.attr("storage_order", 0))
    if kind != "max" and not x.dtype.is_floating:
        raise n.fail(f"{n.op_type} of {x.dtype} is not supported")
    if kind == "lp":
        p = n.attr("p", 2)
        return _lp_root(_pool_nd("sum", _lp_power(x, p), k, s, d, pads, ceil, True, n), p)
    return _pool_nd(kind, x, k, s, d, pads, ceil, bool(n.attr("count_include_pad", 0)), n)


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(n: NodeCall) -> Var:
    x = n.x(0)
    axes = list(range(2, x.ndim))
    if n.op_type == "GlobalAveragePool":
        return prim("reduce_mean", [x], axes=axes, keepdims=True)
    if n.op_type == "GlobalMaxPool":
        return prim("reduce_max", [x], axes=axes, keepdims=True)
    p = n.attr("p", 2)
    return _lp_root(prim("reduce_sum", [_lp_power(x, p)], axes=axes, keepdims=True), p)


# ---- normalisation ---------------------------------------------------------------------------------------


def _channel(v: Var, ndim: int) -> Var:
    """A per-channel [C] vector shaped to broadcast over [N, C, ...]."""
    return reshape(v, [-1] + [1] * (ndim - 2))


@register("BatchNormalization")
def _batch_norm(n: NodeCall) -> list:
    x = n.x(0)
    eps = n.attr("epsilon", 1e-5)
    training = bool(n.attr("training_mode", 0)) if n.opset >= 14 else (n.n_outputs > 1 and n.opset >= 9)
    if n.opset < 9 and not n.attr("is_test", 1 if n.opset >= 7 else 0) and n.n_outputs > 1:
        raise n.fail("training-mode BatchNormalization of opset < 9 is not supported")
    if training:
        momentum = n.attr("momentum", 0.9)
        axes = [0] + list(range(2, x.ndim))
        mean = prim("reduce_mean", [x], axes=axes, keepdims=True)
        diff = x - mean
        var = prim("reduce_mean", [diff * diff], axes=axes, keepdims=True)
        y = diff * F.rsqrt(var + eps) * _channel(n.x(1), x.ndim) + _channel(n.x(2), x.ndim)
        m1 = reshape(mean, [-1])
        v1 = reshape(var, [-1])
        run_mean = n.x(3) * momentum + m1 * (1 - momentum)
        run_var = n.x(4) * momentum + v1 * (1 - momentum)
        return [y, same_dtype(run_mean, n.x(3)), same_dtype(run_var, n.x(4))]
    consts = [n.const(i) for i in range(1, 5)]
    if all(c is not None for c in consts):  # fold to one multiply and one add per channel
        scale, bias, mean, var = (c.astype(np.float64) for c in consts)
        a = scale / np.sqrt(var + eps)
        a_v, b_v = const(a, x.dtype.name), const(bias - mean * a, x.dtype.name)
    else:
        scale, bias, mean, var = (n.x(i) for i in range(1, 5))
        a_v = scale * F.rsqrt(var + eps)
        b_v = bias - mean * a_v
    return [x * _channel(a_v, x.ndim) + _channel(b_v, x.ndim)]


@register("InstanceNormalization")
def _instance_norm(n: NodeCall) -> Var:
    x = n.x(0)
    y = F.layer_norm(x, axis=2, eps=n.attr("epsilon", 1e-5))
    return y * _channel(n.x(1), x.ndim) + _channel(n.x(2), x.ndim)


@register("LayerNormalization")
def _layer_norm(n: NodeCall) -> list:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", -1), x.ndim, n)
    eps = n.attr("epsilon", 1e-5)
    y = F.layer_norm(x, axis=axis, eps=eps)
    y = y * n.x(1)
    if n.has(2):
        y = y + n.x(2)
    outs = [same_dtype(y, x)]
    if n.wants(1) or n.wants(2):
        xf = x if x.dtype.name in ("float32", "float64") else F.cast(x, "float32")
        axes = list(range(axis, x.ndim))
        mean = prim("reduce_mean", [xf], axes=axes, keepdims=True)
        diff = xf - mean
        var = prim("reduce_mean", [diff * diff], axes=axes, keepdims=True)
        outs += [mean, F.rsqrt(var + eps)]
    return outs


@register("GroupNormalization")
def _group_norm(n: NodeCall) -> Var:
    x = n.x(0)
    g = n.attr("num_groups")
    N, C = x.shape[:2]
    y = F.layer_norm(reshape(x, [N, g, -1]), axis=2, eps=n.attr("epsilon", 1e-5))
    scale, bias = n.x(1), n.x(2)
    if scale.shape[0] == g and g != C:  # opset 18: one scale and bias per group
        y = y * reshape(scale, [g, 1]) + reshape(bias, [g, 1])
        return reshape(y, x.shape)
    return reshape(y, x.shape) * _channel(scale, x.ndim) + _channel(bias, x.ndim)


@register("RMSNormalization")
def _rms_norm(n: NodeCall) -> Var:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", -1), x.ndim, n)
    xf = x if x.dtype.name in ("float32", "float64") else F.cast(x, "float32")
    ms = prim("reduce_mean", [xf * xf], axes=list(range(axis, x.ndim)), keepdims=True)
    y = same_dtype(xf * F.rsqrt(ms + n.attr("epsilon", 1e-5)), x)
    return y * n.x(1)


@register("MeanVarianceNormalization")
def _mvn(n: NodeCall) -> Var:
    x = n.x(0)
    axes = [norm_axis(a, x.ndim, n) for a in (n.attr("axes") or [0, 2, 3])]
    mean = prim("reduce_mean", [x], axes=sorted(axes), keepdims=True)
    diff = x - mean
    var = prim("reduce_mean", [diff * diff], axes=sorted(axes), keepdims=True)
    return diff / (F.sqrt(var) + 1e-9)


@register("LRN")
def _lrn(n: NodeCall) -> Var:
    x = n.x(0)
    size = n.attr("size")
    alpha, beta, bias = n.attr("alpha", 1e-4), n.attr("beta", 0.75), n.attr("bias", 1.0)
    N, C = x.shape[:2]
    sq = reshape(x * x, [N, 1, C, prod(x.shape[2:])])
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    mean = prim("avg_pool2d", [sq], kernel=[size, 1], stride=[1, 1], pads=[lo, 0, hi, 0], ceil_mode=False,
                count_include_pad=True)  # window sum / size
    return x / F.power(reshape(mean, x.shape) * alpha + bias, beta)


# ---- resize --------------------------------------------------------------------------------------------


def _cubic(dist: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(dist)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _source_coords(mode: str, out_len: int, in_len: int, scale: float, roi: Optional[tuple]) -> tuple:
    """Source coordinate of each output position, and a mask of extrapolated positions (tf_crop_and_resize).

    The arithmetic is float32, as onnxruntime's, so nearest-neighbour choices at exact half-way points
    agree with it.  ``align_corners`` and ``tf_crop_and_resize`` divide by ``scale * length_original - 1``
    (a fractional output width when scales are given), as ONNX's reference and node tests do
    (onnxruntime uses the integer output length there); ``pytorch_half_pixel`` maps a length-1 output
    to 0, as the spec and onnxruntime do.
    """
    f = np.float32
    width = f(scale) * f(in_len)  # the output width before rounding
    y = np.arange(out_len, dtype=f)
    sc, half = f(scale), f(0.5)
    extra = None
    if mode == "align_corners":
        x = np.zeros(out_len, f) if width == 1 else y * f(in_len - 1) / (width - f(1))
    elif mode == "asymmetric":
        x = y / sc
    elif mode == "pytorch_half_pixel":
        x = np.zeros(out_len, f) if out_len == 1 else (y + half) / sc - half
    elif mode == "half_pixel":
        x = (y + half) / sc - half
    elif mode == "half_pixel_symmetric":
        adjustment = f(out_len) / (sc * f(in_len))
        x = f(in_len) / f(2) * (f(1) - adjustment) + (y + half) / sc - half
    elif mode == "tf_crop_and_resize":
        r0, r1 = f(roi[0]), f(roi[1])
        if width == 1:
            x = np.full(out_len, (r1 - r0) * f(in_len - 1) / f(2) + r0 * f(in_len - 1), f)
        else:
            x = r0 * f(in_len - 1) + y * (r1 - r0) * f(in_len - 1) / (width - f(1))
        extra = (x < 0) | (x > in_len - 1)
    else:
        raise ValueError(f"unknown coordinate_transformation_mode {mode!r}")
    return x.astype(np.float64), extra


def _resize_taps(kind: str, x: np.ndarray, in_len: int, scale: float, nearest: str, a: float, antialias: bool,
                 exclude_outside: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Source indices [out, taps] (clamped) and weights [out, taps] (None for nearest) along one axis."""
    if kind == "nearest":
        base = np.floor(x)
        frac = x - base
        if nearest == "round_prefer_floor":
            up = frac > 0.5
        elif nearest == "round_prefer_ceil":
            up = frac >= 0.5
        elif nearest == "floor":
            up = np.zeros_like(frac, bool)
        elif nearest == "ceil":
            up = frac > 0
        else:
            raise ValueError(f"unknown nearest_mode {nearest!r}")
        idx = base.astype(np.int64) + up
        return np.clip(idx, 0, in_len - 1)[:, None], None
    # A whole coordinate counts as the right end of the interval to its left (ratio 1).
    base = np.floor(x)
    whole = x == base
    base = np.where(whole, base - 1, base).astype(np.int64)
    ratio = np.where(whole, 1.0, x - np.floor(x))
    s = min(scale, 1.0) if antialias else 1.0
    if kind == "linear":
        start = int(math.floor(-1 / s) + 1) if antialias else 0
        offsets = np.arange(start, 2 - start)
        w = np.clip(1 - np.abs((offsets[None, :] - ratio[:, None]) * s), 0, 1)
    else:  # cubic
        start = int(math.floor(-2 / s) + 1) if antialias else -1
        offsets = np.arange(start, 2 - start + (0 if antialias else 0))
        w = _cubic((offsets[None, :] - ratio[:, None]) * s, a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base[:, None] + offsets[None, :]
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        tot = w.sum(axis=1, keepdims=True)
        w = w / np.where(tot == 0, 1.0, tot)
    return np.clip(idx, 0, in_len - 1), w


def _resize_axis(v: Var, axis: int, out_len: int, scale: float, kind: str, coord: str, nearest: str, a: float,
                 antialias: bool, exclude_outside: bool, roi: Optional[tuple], extrapolation: float) -> Var:
    in_len = v.shape[axis]
    xs, extra = _source_coords(coord, out_len, in_len, scale, roi)
    idx, w = _resize_taps(kind, xs, in_len, scale, nearest, a, antialias, exclude_outside)
    taps = idx.shape[1]
    g = prim("gather", [v, const(idx.reshape(-1), "int64")], axis=axis)
    if w is not None:
        shape = list(v.shape)
        shape[axis:axis + 1] = [out_len, taps]
        wshape = [1] * len(shape)
        wshape[axis], wshape[axis + 1] = out_len, taps
        g = prim("reduce_sum", [reshape(g, shape) * const(w.reshape(wshape), v.dtype.name)], axes=[axis + 1],
                 keepdims=False)
    if extra is not None and extra.any():
        mshape = [1] * v.ndim
        mshape[axis] = out_len
        g = F.where(const(extra.reshape(mshape)), scalar_like(extrapolation, g), g)
    return g


def resize(x: Var, sizes: Optional[list], scales: Optional[list], axes: list, kind: str, coord: str, nearest: str,
           a: float = -0.75, antialias: bool = False, exclude_outside: bool = False, roi: Optional[list] = None,
           extrapolation: float = 0.0, policy: str = "stretch") -> Var:
    """ONNX Resize over ``axes``: separable, one gather (+ weights and a sum for linear / cubic) per axis."""
    r = x.ndim
    if sizes is not None:
        sc = [sizes[i] / x.shape[ax] for i, ax in enumerate(axes)]
        if policy != "stretch":
            s = min(sc) if policy == "not_larger" else max(sc)
            sc = [s] * len(axes)
            sizes = [int(s * x.shape[ax] + 0.5) for ax in axes]
        outs = list(sizes)
    else:
        sc = list(scales)
        outs = [int(x.shape[ax] * sc[i]) for i, ax in enumerate(axes)]
    y = x if x.dtype.is_floating else F.cast(x, "float32")
    for i, ax in enumerate(axes):
        axis_roi = None if roi is None else (roi[i], roi[i + len(axes)])
        if outs[i] == y.shape[ax] and math.isclose(sc[i], 1.0) and coord != "tf_crop_and_resize":
            continue
        y = _resize_axis(y, ax, outs[i], sc[i], kind, coord, nearest, a, antialias, exclude_outside, axis_roi,
                         extrapolation)
    if y.dtype != x.dtype:
        if x.dtype.is_integer and kind != "nearest":
            info = np.iinfo(x.dtype.numpy)
            y = F.clip(F.round(y), float(info.min), float(info.max))
        y = F.cast(y, x.dtype)
    _ = r
    return y


@register("Resize")
def _resize(n: NodeCall) -> Var:
    x = n.x(0)
    mode = n.attr("mode", "nearest")
    kind = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "trilinear": "linear",
            "cubic": "cubic", "bicubic": "cubic"}.get(mode)
    if kind is None:
        raise n.error(f"unknown mode {mode!r}")
    if n.opset < 11:  # opset 10: (X, scales), asymmetric coordinates
        scales = [float(v) for v in np.asarray(n.value(1)).reshape(-1)]
        return resize(x, None, scales, list(range(x.ndim)), kind, "asymmetric", "floor" if kind == "nearest" else "")
    axes = n.attr("axes")
    axes = list(range(x.ndim)) if axes is None else [norm_axis(a, x.ndim, n) for a in axes]
    roi = n.value(1) if n.has(1) else None
    if roi is not None:
        roi = [float(v) for v in np.asarray(roi).reshape(-1)] or None
    scales = n.value(2) if n.has(2) else None
    if scales is not None:
        scales = [float(v) for v in np.asarray(scales).reshape(-1)] or None
    sizes = n.ints(3) if n.has(3) else None
    sizes = sizes or None
    if (scales is None) == (sizes is None):
        raise n.error("exactly one of scales and sizes must be given")
    coord = n.attr("coordinate_transformation_mode", "half_pixel")
    if roi is not None and len(roi) == 2 * x.ndim and len(axes) != x.ndim:
        roi = [roi[a] for a in axes] + [roi[x.ndim + a] for a in axes]
    if n.opset < 13 and coord == "tf_half_pixel_for_nn":
        coord = "half_pixel"
    return resize(x, sizes, scales, axes, kind, coord, n.attr("nearest_mode", "round_prefer_floor"),
                  n.attr("cubic_coeff_a", -0.75), bool(n.attr("antialias", 0)), bool(n.attr("exclude_outside", 0)),
                  roi if coord == "tf_crop_and_resize" else None, n.attr("extrapolation_value", 0.0),
                  n.attr("keep_aspect_ratio_policy", "stretch"))


@register("Upsample")
def _upsample(n: NodeCall) -> Var:
    x = n.x(0)
    scales = n.attr("scales") if n.opset < 9 else [float(v) for v in np.asarray(n.value(1)).reshape(-1)]
    mode = n.attr("mode", "nearest")
    kind = "nearest" if mode == "nearest" else "linear"
    return resize(x, None, scales, list(range(x.ndim)), kind, "asymmetric", "floor")
