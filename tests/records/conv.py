"""Records for convolution and pooling: conv2d, conv2d_transpose, max_pool2d, avg_pool2d (and
their MNN aliases, global / adaptive pooling, softmax) against straightforward numpy references
written here, and against torch.nn.functional when torch is importable."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.op_records import FLOATS, HALFS, INTS, OpRecord

try:  # optional second reference
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = None

# Sums of up to a few dozen products of values in [-3, 3].
_TOL = dict(rtol=1e-5, atol=1e-4)


# ---- numpy references ---------------------------------------------------------------------------


def _out_size(n, k, s, p0, p1, d, ceil_mode=False):
    span = n + p0 + p1 - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p0:
        out -= 1
    return out


def conv2d_ref(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = stride, dilation, pads
    oh, ow = _out_size(h, kh, sh, pt, pb, dh), _out_size(wd, kw, sw, pl, pr, dw)
    xp = np.pad(x64, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                ]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w64[g * og : (g + 1) * og, :, i, j]
                )
    if b is not None:
        out += b.astype(np.float64).reshape(1, -1, 1, 1)
    return out


def conv2d_transpose_ref(
    x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1, output_padding=(0, 0)
):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (oph, opw) = stride, dilation, pads, output_padding
    cg = c // groups
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1
    oh, ow = full_h - pt - pb + oph, full_w - pl - pr + opw
    full = np.zeros((n, og * groups, full_h + oph, full_w + opw))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum(
                    "nchw,co->nohw", x64[:, g * cg : (g + 1) * cg], w64[g * cg : (g + 1) * cg, :, i, j]
                )
                full[
                    :,
                    g * og : (g + 1) * og,
                    i * dh : i * dh + sh * (h - 1) + 1 : sh,
                    j * dw : j * dw + sw * (wd - 1) + 1 : sw,
                ] += contrib
    out = full[:, :, pt : pt + oh, pl : pl + ow]
    if b is not None:
        out = out + b.astype(np.float64).reshape(1, -1, 1, 1)
    return out


def backprop_filter_ref(x, dy, kernel, stride=(1, 1), pads=(0, 0), dilation=(1, 1), groups=1):
    """dW[o, c, i, j] = sum of dy[n, o, oh, ow] * x[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 outside)."""
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    n, c, h, w = x.shape
    _, o, oh, ow = dy.shape
    (kh, kw), (sh, sw), (pt, pl), (dh, dw) = kernel, stride, pads, dilation
    cg, og = c // groups, o // groups
    need_h, need_w = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
    xp = np.zeros((n, c, max(need_h, pt + h), max(need_w, pl + w)))
    xp[:, :, pt : pt + h, pl : pl + w] = x64
    out = np.zeros((o, cg, kh, kw))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg : (g + 1) * cg, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                           j * dw : j * dw + sw * (ow - 1) + 1 : sw][:, :, :oh, :ow]
                out[g * og : (g + 1) * og, :, i, j] = np.einsum("nchw,nohw->oc", patch, dy64[:, g * og : (g + 1) * og])
    return out


def max_pool2d_grad_ref(x, dy, kernel, stride, pads=(0, 0, 0, 0), dilation=(1, 1), ceil_mode=False):
    """Each window's dy to its first maximum (row-major taps, padding excluded, first NaN wins)."""
    n, c, h, w = x.shape
    _, _, oh, ow = dy.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl) = kernel, stride, dilation, pads[:2]
    xf, gf = x.astype(np.float64), dy.astype(np.float64)
    dx = np.zeros((n, c, h, w))
    for a in range(oh):
        for b in range(ow):
            taps = [(a * sh - pt + i * dh, b * sw - pl + j * dw) for i in range(kh) for j in range(kw)]
            taps = [(r, q) for r, q in taps if 0 <= r < h and 0 <= q < w]
            if not taps:
                continue
            vals = np.stack([xf[:, :, r, q] for r, q in taps], -1)  # [n, c, taps]
            first = np.argmax(vals, axis=-1)  # first maximum; the first NaN wins
            for t, (r, q) in enumerate(taps):
                dx[:, :, r, q] += np.where(first == t, gf[:, :, a, b], 0.0)
    return dx


def _windows(x, kernel, stride, pads, dilation, ceil_mode, fill):
    """Padded input and, per kernel offset, the strided view of the window elements."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr) = kernel, stride, dilation, pads
    oh, ow = _out_size(h, kh, sh, pt, pb, dh, ceil_mode), _out_size(w, kw, sw, pl, pr, dw, ceil_mode)
    # Extra room past the padding for ceil_mode's last windows.
    eh = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + pt + pb))
    ew = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + pl + pr))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew)), constant_values=fill)
    views = [
        xp[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return views, (pt, pl, pb, pr, eh, ew)


def max_pool2d_ref(x, kernel, stride, pads=(0, 0, 0, 0), dilation=(1, 1), ceil_mode=False):
    xf = x.astype(np.float64)
    views, _ = _windows(xf, kernel, stride, pads, dilation, ceil_mode, -np.inf)
    out = views[0]
    for v in views[1:]:
        out = np.maximum(out, v)  # NaN propagates
    if x.dtype.kind in "iu":
        out = np.where(np.isinf(out), np.iinfo(x.dtype).min, out).astype(x.dtype)
    return out


def avg_pool2d_ref(x, kernel, stride, pads=(0, 0, 0, 0), ceil_mode=False, count_include_pad=True):
    xf = x.astype(np.float64)
    views, (pt, pl, pb, pr, eh, ew) = _windows(xf, kernel, stride, pads, (1, 1), ceil_mode, 0.0)
    total = sum(views)
    # Divisor: the window clipped to the padded input (count_include_pad) or to the input.
    region = np.ones(x.shape[:2] + (x.shape[2] + pt + pb, x.shape[3] + pl + pr))
    if not count_include_pad:
        region[:, :, :pt] = 0
        region[:, :, region.shape[2] - pb :] = 0
        region[:, :, :, :pl] = 0
        region[:, :, :, region.shape[3] - pr :] = 0
    region = np.pad(region, ((0, 0), (0, 0), (0, eh), (0, ew)))
    count = sum(
        region[
            :,
            :,
            i : i + stride[0] * (total.shape[2] - 1) + 1 : stride[0],
            j : j + stride[1] * (total.shape[3] - 1) + 1 : stride[1],
        ]
        for i in range(kernel[0])
        for j in range(kernel[1])
    )
    return total / count


# ---- strategies -----------------------------------------------------------------------------------


@st.composite
def _conv_shapes(draw, bias: bool, transpose: bool = False, depthwise: bool = False, max_hw: int = 7):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if depthwise:
        groups, cg = draw(st.integers(2, 4)), 1
    n = draw(st.integers(0, 2)) if draw(st.booleans()) else 1
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = (n, groups * cg, h, w)
    if draw(st.integers(0, 4)) == 0 and not transpose:
        x = x[1:]  # unbatched
    wt = (groups * cg, og, kh, kw) if transpose else (groups * og, cg, kh, kw)
    shapes = (x, wt)
    if bias:
        shapes += ((groups * og,),)
    return shapes


@st.composite
def _conv_params(draw, shp, transpose: bool = False):
    x, w = shp[0], shp[1]
    h, wd, c = x[-2], x[-1], x[-3]
    kh, kw = w[2], w[3]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    if not transpose:
        # Grow the bottom / right pads until the (dilated) kernel fits.
        pads[2] += max(0, d[0] * (kh - 1) + 1 - (h + pads[0] + pads[2]))
        pads[3] += max(0, d[1] * (kw - 1) + 1 - (wd + pads[1] + pads[3]))
        return {"stride": s, "pads": pads, "dilation": d, "groups": c // w[1]}
    # Any divisor of the input channels is a valid group count for a [C, O / groups, kh, kw] weight.
    if len(shp) == 3:  # the bias fixes the output channels
        groups = shp[2][0] // w[1]
    else:
        groups = draw(st.sampled_from([g for g in range(1, 4) if c % g == 0]))
    op = [draw(st.integers(0, max(s[0], d[0]) - 1)), draw(st.integers(0, max(s[1], d[1]) - 1))]
    full = [(h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0], (wd - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]]
    for ax in (0, 1):  # keep the output size >= 0
        while pads[ax] + pads[ax + 2] > full[ax]:
            i = ax if pads[ax] >= pads[ax + 2] else ax + 2
            pads[i] -= 1
    return {"stride": s, "pads": pads, "dilation": d, "groups": groups, "output_padding": op}


def _conv_fn(F, x, w, b=None, *, stride, pads, dilation, groups):
    return F.conv2d(x, w, b, stride=stride, padding=pads, dilation=dilation, groups=groups)


def _conv_np(x, w, b=None, *, stride, pads, dilation, groups):
    if x.ndim == 3:
        return conv2d_ref(x[None], w, b, stride, pads, dilation, groups)[0]
    return conv2d_ref(x, w, b, stride, pads, dilation, groups)


def _deconv_fn(F, x, w, b=None, *, stride, pads, dilation, groups, output_padding):
    return F.conv2d_transpose(
        x, w, b, stride=stride, padding=pads, dilation=dilation, groups=groups, output_padding=output_padding
    )


def _deconv_np(x, w, b=None, *, stride, pads, dilation, groups, output_padding):
    return conv2d_transpose_ref(x, w, b, stride, pads, dilation, groups, output_padding)


@st.composite
def _pool_shapes(draw, max_hw: int = 7, min_c: int = 0):
    n, c = draw(st.integers(0, 2)), draw(st.integers(min_c, 3))
    if draw(st.booleans()):
        n, c = max(n, 1), max(c, 1)
    x = (n, c, draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw)))
    if draw(st.integers(0, 4)) == 0:
        x = x[1:]
    return (x,)


@st.composite
def _pool_params(draw, shp, dilated: bool, torch_rule: bool = False):
    h, w = shp[0][-2], shp[0][-1]
    k = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))] if dilated else [1, 1]
    eff = [d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1]
    limit = [kk // 2 for kk in k] if torch_rule else [e - 1 for e in eff]  # torch: pad <= kernel / 2
    if torch_rule:  # symmetric pads, at most half the kernel
        ph, pw = draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1]))
        pads = [ph, pw, ph, pw]
    else:
        pads = [
            draw(st.integers(0, limit[0])),
            draw(st.integers(0, limit[1])),
            draw(st.integers(0, limit[0])),
            draw(st.integers(0, limit[1])),
        ]
    # Shrink the kernel until it fits the padded input.
    for ax, n in ((0, h), (1, w)):
        while d[ax] * (k[ax] - 1) + 1 > n + pads[ax] + pads[ax + 2]:
            k[ax] -= 1
            e = d[ax] * (k[ax] - 1) + 1
            lim = k[ax] // 2 if torch_rule else e - 1
            pads[ax], pads[ax + 2] = min(pads[ax], lim), min(pads[ax + 2], lim)
    p = {"kernel": k, "stride": s, "pads": pads, "ceil_mode": draw(st.booleans())}
    if dilated:
        p["dilation"] = d
    return p


def _batched(ref):
    def f(x, **kw):
        return ref(x[None], **kw)[0] if x.ndim == 3 else ref(x, **kw)

    return f


def _values_nan(rng, shp, dtype, params):
    """Float values with a NaN now and then (max pooling must propagate it)."""
    a = rng.uniform(-3, 3, shp[0]).astype("float32" if dtype == "bfloat16" else dtype)
    if a.size and dtype in FLOATS and rng.random() < 0.3:
        a.reshape(-1)[rng.integers(0, a.size)] = np.nan
    return [a]


@st.composite
def _filter_shapes(draw):
    g, cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(0, 2))
    x = (n, g * cg, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dy = (n, g * og, draw(st.integers(0, 5)), draw(st.integers(0, 5)))
    return (x, dy)


@st.composite
def _filter_params(draw, shp):
    c, o = shp[0][1], shp[1][1]
    return {
        "kernel": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
        "stride": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
        "pads": [draw(st.integers(0, 2)), draw(st.integers(0, 2))],
        "dilation": [draw(st.integers(1, 2)), draw(st.integers(1, 2))],
        "groups": draw(st.sampled_from([g for g in range(1, 4) if c % g == 0 and o % g == 0])),
    }


@st.composite
def _filter_shapes_many_taps(draw):
    """More than 256 taps per output (C * kh * kw with a 3x3 kernel): the unfold + GEMM path."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(29, 40)), draw(st.integers(1, 4))
    x = (n, c, draw(st.integers(3, 7)), draw(st.integers(3, 7)))
    return (x, (n, o, draw(st.integers(1, 5)), draw(st.integers(1, 5))))


@st.composite
def _filter_params_3x3(draw, shp):
    p = draw(_filter_params(shp))
    p["kernel"] = [3, 3]
    p["groups"] = 1
    return p


def _filter_fn(F, x, dy, **p):
    from mnn_expr._core import apply1

    return apply1("conv2d_backprop_filter", [x, dy], **p)


def _pool_grad_fn(F, x, dy, **p):
    from mnn_expr._core import apply1

    return apply1("max_pool2d_grad", [x, dy], **p)


def _pool_grad_values(rng, shp, dtype, params):
    """x (ties and, now and then, a NaN) and dy of max_pool2d(x)'s shape."""
    (x,) = _values_nan(rng, shp, dtype, params)
    if x.size and rng.random() < 0.5:
        x = np.round(x).astype(x.dtype)  # ties: the first maximum must win
    ref = max_pool2d_ref(x[None] if x.ndim == 3 else x, params["kernel"], params["stride"], params["pads"],
                         params["dilation"], params["ceil_mode"])
    dy = rng.uniform(-3, 3, ref.shape[1:] if x.ndim == 3 else ref.shape).astype(x.dtype)
    if dtype == "bfloat16":  # values the op sees exactly (it rounds float32 input to bfloat16)
        x, dy = ((a.view(np.uint32) & 0xFFFF0000).view(np.float32) for a in (x, dy))
    return [x, dy]


RECORDS = [
    OpRecord(
        "conv2d",
        _conv_fn,
        _conv_np,
        nargs=2,
        dtypes=FLOATS + HALFS,
        shapes=_conv_shapes(False),
        params=_conv_params,
        covers=("conv2d",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_bias",
        _conv_fn,
        _conv_np,
        nargs=3,
        dtypes=FLOATS,
        shapes=_conv_shapes(True),
        params=_conv_params,
        covers=("conv2d",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_depthwise",
        _conv_fn,
        _conv_np,
        nargs=3,
        dtypes=FLOATS,
        shapes=_conv_shapes(True, depthwise=True),
        params=_conv_params,
        covers=("conv2d",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_int_input",
        _conv_fn,
        _conv_np,
        nargs=2,
        dtypes=("int32", "int8"),
        shapes=_conv_shapes(False),
        params=_conv_params,
        covers=("conv2d", "cast"),
        **_TOL,
    ),
    OpRecord(
        "conv2d_large",
        _conv_fn,
        _conv_np,
        nargs=3,
        dtypes=("float32",),
        shapes=st.tuples(st.integers(1, 2), st.integers(1, 24), st.integers(1, 40), st.integers(5, 20)).map(
            lambda t: ((t[0], t[1], t[3], t[3]), (t[2], t[1], 3, 3), (t[2],))
        ),
        params=_conv_params,
        covers=("conv2d",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_transpose",
        _deconv_fn,
        _deconv_np,
        nargs=2,
        dtypes=FLOATS + HALFS,
        shapes=_conv_shapes(False, transpose=True),
        params=lambda shp: _conv_params(shp, transpose=True),
        covers=("conv2d_transpose",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_transpose_bias",
        _deconv_fn,
        _deconv_np,
        nargs=3,
        dtypes=FLOATS,
        shapes=_conv_shapes(True, transpose=True),
        params=lambda shp: _conv_params(shp, transpose=True),
        covers=("conv2d_transpose",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_backprop_filter",
        _filter_fn,
        backprop_filter_ref,
        nargs=2,
        dtypes=FLOATS + HALFS,
        shapes=_filter_shapes(),
        params=_filter_params,
        covers=("conv2d_backprop_filter",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_backprop_filter_many_taps",
        _filter_fn,
        backprop_filter_ref,
        nargs=2,
        dtypes=FLOATS,
        shapes=_filter_shapes_many_taps(),
        params=_filter_params_3x3,
        covers=("conv2d_backprop_filter",),
        **_TOL,
    ),
    OpRecord(
        "conv2d_many_taps",
        _conv_fn,
        _conv_np,
        nargs=3,
        dtypes=("float32", "float64"),
        shapes=st.tuples(st.integers(1, 2), st.integers(29, 40), st.integers(1, 4), st.integers(3, 8)).map(
            lambda t: ((t[0], t[1], t[3], t[3]), (t[2], t[1], 3, 3), (t[2],))
        ),
        params=_conv_params,
        covers=("conv2d",),
        **_TOL,
    ),
    OpRecord(
        "max_pool2d_grad",
        _pool_grad_fn,
        lambda x, dy, **p: _batched(lambda a, **q: max_pool2d_grad_ref(a, dy[None] if dy.ndim == 3 else dy, **q))(
            x, **p),
        nargs=2,
        dtypes=FLOATS + HALFS,
        shapes=_pool_shapes().map(lambda t: (t[0], t[0])),
        params=lambda shp: _pool_params(shp, True),
        values=_pool_grad_values,
        covers=("max_pool2d_grad",),
        **_TOL,
    ),
    OpRecord(
        "max_pool2d",
        lambda F, x, kernel, stride, pads, dilation, ceil_mode: F.max_pool2d(
            x, kernel, stride, pads, dilation, ceil_mode
        ),
        _batched(
            lambda x, **p: max_pool2d_ref(
                x, p["kernel"], p["stride"], p["pads"], p["dilation"], p["ceil_mode"]
            )
        ),
        dtypes=FLOATS + HALFS + INTS,
        shapes=_pool_shapes(),
        params=lambda shp: _pool_params(shp, True),
        values=None,
        covers=("max_pool2d",),
    ),
    OpRecord(
        "max_pool2d_nan",
        lambda F, x, kernel, stride, pads, dilation, ceil_mode: F.max_pool2d(
            x, kernel, stride, pads, dilation, ceil_mode
        ),
        _batched(
            lambda x, **p: max_pool2d_ref(
                x, p["kernel"], p["stride"], p["pads"], p["dilation"], p["ceil_mode"]
            )
        ),
        dtypes=FLOATS,
        shapes=_pool_shapes(),
        params=lambda shp: _pool_params(shp, True),
        values=_values_nan,
        covers=("max_pool2d",),
    ),
    OpRecord(
        "avg_pool2d",
        lambda F, x, kernel, stride, pads, ceil_mode, cip: F.avg_pool2d(
            x, kernel, stride, pads, ceil_mode, cip
        ),
        _batched(
            lambda x, **p: avg_pool2d_ref(x, p["kernel"], p["stride"], p["pads"], p["ceil_mode"], p["cip"])
        ),
        dtypes=FLOATS + HALFS,
        shapes=_pool_shapes(),
        params=lambda shp: _pool_params(shp, False).flatmap(
            lambda p: st.booleans().map(lambda c: {**p, "cip": c})
        ),
        covers=("avg_pool2d",),
        rtol=1e-5,
        atol=1e-6,
    ),
    OpRecord(
        "avg_pool2d_int_input",
        lambda F, x: F.avg_pool2d(x, 2, 1, 1),
        _batched(lambda x: avg_pool2d_ref(x, (2, 2), (1, 1), (1, 1, 1, 1))),
        dtypes=("int32",),
        shapes=_pool_shapes(),
        covers=("avg_pool2d", "cast"),
    ),
    OpRecord(
        "max_pool",
        lambda F, x: F.max_pool(x, [2, 2], [2, 2]),
        _batched(lambda x: max_pool2d_ref(x, (2, 2), (2, 2))),
        shapes=_pool_shapes().filter(lambda s: s[0][-1] >= 2 and s[0][-2] >= 2),
        covers=("max_pool2d",),
    ),
    OpRecord(
        "max_pool_same",
        lambda F, x: F.max_pool(x, [3, 3], [2, 2], F.SAME),
        _batched(lambda x: max_pool2d_ref(x, (3, 3), (2, 2), _same(x.shape, (3, 3), (2, 2)))),
        shapes=_pool_shapes(),
        covers=("max_pool2d",),
    ),
    OpRecord(
        "avg_pool_same",
        lambda F, x: F.avg_pool(x, [3, 3], [2, 2], F.SAME),
        _batched(
            lambda x: avg_pool2d_ref(
                x, (3, 3), (2, 2), _same(x.shape, (3, 3), (2, 2)), count_include_pad=False
            )
        ),
        shapes=_pool_shapes(),
        covers=("avg_pool2d",),
        rtol=1e-5,
        atol=1e-6,
    ),
    OpRecord(
        "avg_pool_caffe",
        lambda F, x: F.avg_pool(x, [3, 3], [2, 2], F.CAFFE, [1, 1]),
        _batched(lambda x: avg_pool2d_ref(x, (3, 3), (2, 2), (1, 1, 1, 1))),
        shapes=_pool_shapes(),
        covers=("avg_pool2d",),
        rtol=1e-5,
        atol=1e-6,
    ),
    OpRecord(
        "global_max_pool",
        lambda F, x: F.global_max_pool(x),
        lambda x: x.max(axis=(-2, -1), keepdims=True),
        dtypes=FLOATS + INTS,
        shapes=_pool_shapes(),
        covers=("max_pool2d",),
    ),
    OpRecord(
        "global_avg_pool",
        lambda F, x: F.global_avg_pool(x),
        lambda x: x.mean(axis=(-2, -1), keepdims=True),
        shapes=_pool_shapes(),
        covers=("avg_pool2d",),
        rtol=1e-5,
        atol=1e-6,
    ),
    OpRecord(
        "adaptive_avg_pool2d",
        lambda F, x, size: F.adaptive_avg_pool2d(x, size),
        lambda x, size: _adaptive_ref(x, size),
        shapes=_pool_shapes(),
        params=lambda shp: st.fixed_dictionaries({"size": st.tuples(st.integers(1, 4), st.integers(1, 4))}),
        covers=("avg_pool2d", "matmul"),
        rtol=1e-5,
        atol=1e-6,
    ),
    OpRecord(
        "conv2d_same",
        lambda F, x, w: F.conv2d(x, w, stride=2, padding="same"),
        lambda x, w: _conv_np(
            x, w, stride=(2, 2), pads=_same(x.shape, w.shape[2:], (2, 2)), dilation=(1, 1), groups=1
        ),
        nargs=2,
        shapes=_conv_shapes(False).filter(lambda s: s[0][-3] == s[1][1]),
        covers=("conv2d",),
        **_TOL,
    ),
]


def _same(xshape, k, s):
    pads = []
    for n, kk, ss in zip(xshape[-2:], k, s):
        out = -(-n // ss)
        total = max((out - 1) * ss + kk - n, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _adaptive_ref(x, size):
    h, w = x.shape[-2:]
    oh, ow = size
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            out[..., i, j] = x[..., h0:h1, w0:w1].astype(np.float64).mean(axis=(-2, -1))
    return out


# ---- softmax ------------------------------------------------------------------------------------------


def _softmax_ref(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_ref(x, axis):
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _values_inf_nan(rng, shp, dtype, params):
    """Values with now and then -inf (a whole row of them too), +inf or NaN."""
    a = rng.uniform(-5, 5, shp[0]).astype(dtype)
    if a.size:
        for special in (-np.inf, np.inf, np.nan):
            if rng.random() < 0.3:
                a.reshape(-1)[rng.integers(0, a.size)] = special
        if rng.random() < 0.3:  # the first row along the axis all -inf: NaN, as numpy
            np.moveaxis(a, params["axis"], -1)[(0,) * (a.ndim - 1)] = -np.inf
    return [a]


def _softmax_pair_ref(x, axis):
    """scipy.special's rule: a row whose max is not finite subtracts 0 (so [1, inf] -> [0, nan])."""
    x = x.astype(np.float64)
    if x.shape[axis] == 0:  # nothing to normalise (numpy's max would refuse the empty axis)
        return [x.copy(), x.copy()]
    with np.errstate(all="ignore"):
        m = x.max(axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        z = x - m
        e = np.exp(z)
        s = e.sum(axis=axis, keepdims=True)
        return [e / s, z - np.log(s)]


_nonempty = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(lambda s: (tuple(s),))
_axis = lambda shp: st.fixed_dictionaries({"axis": st.integers(-len(shp[0]), len(shp[0]) - 1)})  # noqa: E731

RECORDS += [
    OpRecord(
        "softmax",
        lambda F, x, axis: F.softmax(x, axis),
        _softmax_ref,
        dtypes=FLOATS + HALFS,
        low=-20,
        high=20,
        shapes=_nonempty,
        params=_axis,
        covers=("softmax",),
    ),
    OpRecord(
        "softmax_edges",
        lambda F, x, axis: [F.softmax(x, axis), F.log_softmax(x, axis)],
        _softmax_pair_ref,
        dtypes=("float32", "float64"),
        shapes=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(lambda s: (tuple(s),)),
        params=_axis,
        values=_values_inf_nan,
        covers=("softmax", "log_softmax"),
    ),
    OpRecord(
        "log_softmax",
        lambda F, x, axis: F.log_softmax(x, axis),
        _log_softmax_ref,
        dtypes=FLOATS,
        low=-20,
        high=20,
        shapes=_nonempty,
        params=_axis,
        covers=("log_softmax",),
        rtol=1e-5,
        atol=1e-5,
    ),
]


# ---- layer norm -----------------------------------------------------------------------------------------


def _layer_norm_ref(x, axis, eps):
    x = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    if any(x.shape[a] == 0 for a in axes):
        return x.copy()
    with np.errstate(all="ignore"):
        d = x - x.mean(axis=axes, keepdims=True)
        return d / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)


RECORDS += [
    OpRecord(
        "layer_norm",
        lambda F, x, axis, eps: F.layer_norm(x, axis, eps),
        _layer_norm_ref,
        dtypes=FLOATS + HALFS,
        shapes=st.lists(st.integers(0, 6), min_size=1, max_size=4).map(lambda s: (tuple(s),)),
        params=lambda shp: st.fixed_dictionaries({"axis": st.integers(-len(shp[0]), len(shp[0]) - 1),
                                                  "eps": st.sampled_from([1e-5, 1e-3, 0.5])}),
        covers=("layer_norm",),
        rtol=1e-4,
        atol=1e-4,
    ),
]


# ---- the same ops against PyTorch ----------------------------------------------------------------------

if torch is not None:

    def _t(a):
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a))

    def _conv_torch(x, w, b=None, *, stride, pads, dilation, groups):
        xt = TF.pad(_t(x), (pads[1], pads[3], pads[0], pads[2]))
        return TF.conv2d(xt, _t(w), _t(b), stride, 0, dilation, groups).numpy()

    def _deconv_torch(x, w, b=None, *, stride, pads, dilation, groups, output_padding):
        # torch pads symmetrically: crop the asymmetric remainder ourselves.
        out = TF.conv_transpose2d(_t(x), _t(w), _t(b), stride, 0, output_padding, groups, dilation).numpy()
        oh = out.shape[2] - pads[0] - pads[2]
        ow = out.shape[3] - pads[1] - pads[3]
        return out[:, :, pads[0] : pads[0] + oh, pads[1] : pads[1] + ow]

    def _maxpool_torch(x, kernel, stride, pads, dilation, ceil_mode):
        xt = _t(x[None] if x.ndim == 3 else x)
        out = TF.max_pool2d(xt, kernel, stride, (pads[0], pads[1]), dilation, ceil_mode).numpy()
        return out[0] if x.ndim == 3 else out

    def _avgpool_torch(x, kernel, stride, pads, ceil_mode, cip):
        xt = _t(x[None] if x.ndim == 3 else x)
        out = TF.avg_pool2d(xt, kernel, stride, (pads[0], pads[1]), ceil_mode, cip).numpy()
        return out[0] if x.ndim == 3 else out

    @st.composite
    def _batched_conv_shapes(draw, bias, transpose=False):
        s = draw(_conv_shapes(bias, transpose))
        x = s[0] if len(s[0]) == 4 else (1,) + s[0]
        return (x,) + s[1:]

    RECORDS += [
        OpRecord(
            "conv2d_vs_torch",
            _conv_fn,
            _conv_torch,
            nargs=3,
            dtypes=FLOATS,
            shapes=_batched_conv_shapes(True),
            params=_conv_params,
            covers=("conv2d",),
            **_TOL,
        ),
        OpRecord(
            "conv2d_transpose_vs_torch",
            _deconv_fn,
            _deconv_torch,
            nargs=3,
            dtypes=FLOATS,
            shapes=_batched_conv_shapes(True, True),
            params=lambda shp: _conv_params(shp, transpose=True),
            covers=("conv2d_transpose",),
            **_TOL,
        ),
        OpRecord(
            "max_pool2d_vs_torch",
            lambda F, x, kernel, stride, pads, dilation, ceil_mode: F.max_pool2d(
                x, kernel, stride, pads, dilation, ceil_mode
            ),
            _maxpool_torch,
            dtypes=FLOATS,
            shapes=_pool_shapes(min_c=1),
            params=lambda shp: _pool_params(shp, True, torch_rule=True),
            covers=("max_pool2d",),
        ),
        OpRecord(
            "avg_pool2d_vs_torch",
            lambda F, x, kernel, stride, pads, ceil_mode, cip: F.avg_pool2d(
                x, kernel, stride, pads, ceil_mode, cip
            ),
            _avgpool_torch,
            dtypes=FLOATS,
            shapes=_pool_shapes(min_c=1),
            params=lambda shp: _pool_params(shp, False, torch_rule=True).flatmap(
                lambda p: st.booleans().map(lambda c: {**p, "cip": c})
            ),
            covers=("avg_pool2d",),
            rtol=1e-5,
            atol=1e-6,
        ),
    ]
