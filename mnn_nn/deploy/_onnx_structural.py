"""ONNX mappings of the movement, indexing, sorting and compute primitives (see ``ONNX_OPS`` in
:mod:`mnn_nn.deploy.onnx_export`).

Attribute layouts follow ``native/src/ops``: conv/pool ``pads`` = [top, left, bottom, right] (ONNX's
order), movement ``pad`` = [before0, after0, before1, ...], slice sentinels INT64_MAX / INT64_MIN and
``SLICE_TO_END``; pooling's ceil mode is PyTorch's.

>>> from mnn_nn.deploy.graph import trace
>>> from mnn_nn.deploy.onnx_export import graph_to_onnx
>>> import mnn_expr as F
>>> [n.op_type for n in graph_to_onnx(trace(lambda x: F.flip(x, 0), [F.zeros((3,))])).graph.node]
['Slice']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from ._onnx_emit import INT64_MAX, INT64_MIN, NP_DTYPE, Ctx, Mapping, elem_type, is_float, onnx_module
from .graph import SLICE_TO_END

# --------------------------------------------------------------------------- movement


def _reshape(c: Ctx) -> list:
    shape = [int(s) for s in c.attrs["shape"]]
    out = c.vout[0].shape
    allowzero = 0
    if any(s == 0 and out[k] == 0 for k, s in enumerate(shape)):
        # a literal zero-size dim: ONNX needs allowzero=1, which allows neither -1 nor 0-as-copy
        fixed = [s if s not in (0, -1) or out[k] == 0 else out[k] for k, s in enumerate(shape)]
        if None in fixed:
            raise c.fail("a zero-size reshape with a dynamic dimension cannot be expressed")
        shape, allowzero = fixed, 1
    return [c.e.emit("Reshape", [c.x[0], c.e.const(np.array(shape, np.int64))], allowzero=allowzero)]


def _transpose(c: Ctx) -> list:
    return [c.e.emit("Transpose", c.x, perm=[int(p) for p in c.attrs["perm"]])]


def _slice_end(v: int) -> int:
    return INT64_MAX if v >= SLICE_TO_END else int(v)


def _slice(c: Ctx) -> list:
    e = c.e
    begins = [int(v) for v in c.attrs["begins"]]
    if not begins:
        return [c.x[0]]
    ends = [_slice_end(v) for v in c.attrs["ends"]]
    steps = [int(v) for v in c.attrs["steps"]] or [1] * len(begins)
    return [e.emit("Slice", [c.x[0], e.const(begins), e.const(ends), e.const(list(range(len(begins)))),
                             e.const(steps)])]


def _broadcast_to(c: Ctx) -> list:
    shape = [int(s) for s in c.attrs["shape"]]
    return [c.e.emit("Expand", [c.x[0], c.e.const(np.array(shape, np.int64))])]


def _broadcast_like(c: Ctx) -> list:
    return [c.e.emit("Expand", [c.x[0], c.e.emit("Shape", [c.x[1]])])]


def _concat(c: Ctx) -> list:
    return [c.e.emit("Concat", c.x, axis=int(c.attrs["axis"]))]


def _pad(c: Ctx) -> list:
    e, x = c.e, c.x[0]
    pads = [int(p) for p in c.attrs["pads"]]
    mode = str(c.attrs.get("mode", "constant"))
    r = len(c.shape)
    before, after = pads[0::2], pads[1::2]
    if mode == "constant":
        value = float(c.attrs.get("value", 0.0))
        v = c.c(value if is_float(c.dt) else (bool(value) if c.dt == "bool" else int(value)))
        return [e.emit("Pad", [x, e.const(before + after), v], mode="constant")]
    if mode in ("reflect", "edge"):
        for k in range(r):
            limit = None if c.shape[k] is None else (c.shape[k] - 1 if mode == "reflect" else None)
            if limit is not None and max(before[k], after[k]) > limit:
                raise c.fail(f"reflect pads of ({before[k]}, {after[k]}) on an axis of {c.shape[k]} wrap around "
                             "(ONNX's reflect needs pads smaller than the axis)")
        return [e.emit("Pad", [x, e.const(before + after)], mode=mode)]
    if mode not in ("symmetric", "wrap"):
        raise c.fail(f"unknown pad mode {mode!r}")
    for k in range(r):  # per axis, as NumPy pads
        p, q = before[k], after[k]
        if not (p or q):
            continue
        if c.shape[k] is not None and max(p, q) > c.shape[k]:
            raise c.fail(f"{mode} pads of ({p}, {q}) on an axis of {c.shape[k]} repeat the axis more than once")
        ax = e.const([k])
        parts = []
        if p:
            if mode == "symmetric":
                parts.append(e.emit("Slice", [x, e.const([p - 1]), e.const([INT64_MIN]), ax, e.const([-1])]))
            else:
                parts.append(e.emit("Slice", [x, e.const([-p]), e.const([INT64_MAX]), ax]))
        parts.append(x)
        if q:
            if mode == "symmetric":
                parts.append(e.emit("Slice", [x, e.const([-1]), e.const([-q - 1]), ax, e.const([-1])]))
            else:
                parts.append(e.emit("Slice", [x, e.const([0]), e.const([q]), ax]))
        x = e.emit("Concat", parts, axis=k)
    return [x]


def _tile(c: Ctx) -> list:
    reps = [int(v) for v in c.attrs["reps"]]
    return [c.e.emit("Tile", [c.x[0], c.e.const(np.array(reps, np.int64))])]


def _flip(c: Ctx) -> list:
    axes = [int(a) % len(c.shape) for a in c.attrs["axes"]]
    if not axes:
        return [c.x[0]]
    e, k = c.e, len(axes)
    return [e.emit("Slice", [c.x[0], e.const([-1] * k), e.const([INT64_MIN] * k), e.const(axes),
                             e.const([-1] * k)])]


def _raster(c: Ctx) -> list:
    # Each region is a gather of source elements by flat offset and a scatter into the flat output
    # (offsets are computed here, so every shape must be static).
    e = c.e
    shapes = [v.shape for v in c.vin] + [c.vout[0].shape]
    if any(None in s for s in shapes):
        raise c.fail("raster regions are element offsets of static shapes; export with static shapes")
    rec = [int(v) for v in c.attrs["regions"]]
    out_shape = [int(s) for s in c.attrs["shape"]]
    n_out = int(np.prod(out_shape, dtype=np.int64))
    acc = e.const(np.zeros(n_out, NP_DTYPE[c.dt]), c.dt)
    flat: dict = {}
    pos = 0
    while pos < len(rec):
        src, nd = rec[pos], rec[pos + 1]
        so, do = rec[pos + 2], rec[pos + 3]
        size = rec[pos + 4:pos + 4 + nd]
        ss = rec[pos + 4 + nd:pos + 4 + 2 * nd]
        ds = rec[pos + 4 + 2 * nd:pos + 4 + 3 * nd]
        pos += 4 + 3 * nd
        grid = np.indices(size, dtype=np.int64).reshape(nd, -1) if nd else np.zeros((0, 1), np.int64)
        s_idx = so + (np.asarray(ss, np.int64)[:, None] * grid).sum(0)
        d_idx = do + (np.asarray(ds, np.int64)[:, None] * grid).sum(0)
        if d_idx.size == 0:
            continue
        last = len(d_idx) - 1 - np.unique(d_idx[::-1], return_index=True)[1]  # the last write wins
        s_idx, d_idx = s_idx[last], d_idx[last]
        if src < 0:
            source = acc
        else:
            if src not in flat:
                flat[src] = e.emit("Reshape", [c.x[src], e.const([-1])])
            source = flat[src]
        vals = e.emit("Gather", [source, e.const(s_idx)], axis=0)
        acc = e.emit("ScatterElements", [acc, e.const(d_idx), vals], axis=0)
    return [e.emit("Reshape", [acc, e.const(np.array(out_shape, np.int64))])]


# --------------------------------------------------------------------------- indexing and sorting


def _index(c: Ctx, k: int, int64: bool = False) -> str:
    """Input k as indices: int32/int64 kept (int64 when required), other integer types widened."""
    dt = c.vin[k].dtype
    return c.e.cast(c.x[k], dt, "int64" if int64 or dt not in ("int32", "int64") else dt)


def _gather(c: Ctx) -> list:
    return [c.e.emit("Gather", [c.x[0], _index(c, 1)], axis=int(c.attrs.get("axis", 0)))]


def _nd_indices(c: Ctx) -> str:
    """int64 indices [..., k] with negative entries made non-negative (ScatterND/GatherND)."""
    e = c.e
    idx = _index(c, 1, int64=True)
    k = c.vin[1].shape[-1]
    dims = e.shape_of(c.x[0], c.shape, 0, k)
    neg = e.cast(e.emit("Less", [idx, e.const(0)]), "bool", "int64")
    return e.emit("Add", [idx, e.emit("Mul", [neg, dims])])


def _gather_nd(c: Ctx) -> list:
    return [c.e.emit("GatherND", [c.x[0], _nd_indices(c)])]


def _scatter_reduction(c: Ctx) -> Optional[str]:
    red = str(c.attrs.get("reduction", "none"))
    if red in ("max", "min") and c.e.opset < 18:
        raise c.fail(f"reduction {red!r} needs opset >= 18 (export with opset=18)")
    if red not in ("none", "add", "mul", "max", "min"):
        raise c.fail(f"unknown reduction {red!r}")
    return None if red == "none" else red


def _scatter_nd(c: Ctx) -> list:
    red = _scatter_reduction(c)
    return [c.e.emit("ScatterND", [c.x[0], _nd_indices(c), c.x[2]], reduction=red)]


def _expand(c: Ctx, name: str, shape: Sequence, target: Sequence, dynamic_target: Callable[[], str]) -> str:
    """Value ``name`` of ``shape`` broadcast to ``target``: a constant shape when static, else the shape
    tensor ``dynamic_target()`` builds (Expand broadcasts both ways, so 1s in it keep ``name``'s dims)."""
    if tuple(shape) == tuple(target) and None not in target:
        return name
    tgt = c.e.const(np.array(target, np.int64)) if None not in target else dynamic_target()
    return c.e.emit("Expand", [name, tgt])


def _take_along_axis(c: Ctx) -> list:
    # numpy broadcasts the non-axis dims of data and indices; ONNX's GatherElements needs them equal
    e = c.e
    axis = int(c.attrs["axis"]) % len(c.shape)
    idx = _index(c, 1)
    ds, is_, out = c.shape, c.vin[1].shape, c.vout[0].shape
    x = _expand(c, c.x[0], ds, [ds[axis] if k == axis else d for k, d in enumerate(out)],
                lambda: e.shape_with(idx, is_, axis, 1))
    idx = _expand(c, idx, is_, out, lambda: e.shape_with(c.x[0], ds, axis, 1))
    return [e.emit("GatherElements", [x, idx], axis=axis)]


def _put_along_axis(c: Ctx) -> list:
    # indices and updates broadcast against each other and the non-axis dims of data (numpy's rule)
    e = c.e
    red = _scatter_reduction(c)
    axis = int(c.attrs["axis"]) % len(c.shape)
    ds, is_, us = c.shape, c.vin[1].shape, c.vin[2].shape
    if None in ds or None in is_ or None in us:
        raise c.fail("dynamic dimensions are not supported here; export with static shapes")
    idx, upd = _index(c, 1), c.x[2]
    if len(us) != len(ds):
        us = (1,) * (len(ds) - len(us)) + tuple(us)
        upd = e.emit("Reshape", [upd, e.const(np.array(us, np.int64))])
    space = list(np.broadcast_shapes(tuple(is_), tuple(us)))
    space = [s if k == axis else max(s, ds[k]) for k, s in enumerate(space)]
    idx = _expand(c, idx, is_, space, lambda: "")
    upd = _expand(c, upd, us, space, lambda: "")
    return [e.emit("ScatterElements", [c.x[0], idx, upd], axis=axis, reduction=red)]


def _topk(c: Ctx, k: str, axis: int, largest: bool) -> list:
    e = c.e
    x = e.cast(c.x[0], "bool", "int32") if c.dt == "bool" else c.x[0]
    vals, idx = e.emit("TopK", [x, k], n_out=2, axis=axis, largest=int(largest), sorted=1)
    return [e.cast(vals, "int32", "bool") if c.dt == "bool" else vals, idx]


def _sort(c: Ctx) -> list:
    axis = int(c.attrs.get("axis", -1)) % len(c.shape)
    k = c.e.shape_of(c.x[0], c.shape, axis, axis + 1)
    return _topk(c, k, axis, bool(c.attrs.get("descending", False)))


def _topk_op(c: Ctx) -> list:
    axis = int(c.attrs.get("axis", -1)) % len(c.shape)
    return _topk(c, c.e.const([int(c.attrs["k"])]), axis, bool(c.attrs.get("largest", True)))


# --------------------------------------------------------------------------- compute


def _matmul(c: Ctx) -> list:
    e = c.e
    xs = list(c.x)
    for k, flag in enumerate(("transpose_a", "transpose_b")):
        r = len(c.vin[k].shape)
        if c.attrs.get(flag) and r >= 2:
            xs[k] = e.emit("Transpose", [xs[k]], perm=list(range(r - 2)) + [r - 1, r - 2])
    return [e.emit("MatMul", xs)]


def _image_op(c: Ctx, op_type: str, inputs: list, **attrs: Any) -> list:
    """An NCHW op; an unbatched [C, H, W] input gets a batch axis around it."""
    e = c.e
    unbatched = len(c.shape) == 3
    x = e.unsqueeze(inputs[0], [0]) if unbatched else inputs[0]
    y = e.emit(op_type, [x, *inputs[1:]], **attrs)
    return [e.squeeze(y, [0]) if unbatched else y]


def _ints(v: Any) -> list:
    return [int(a) for a in v]


def _conv2d(c: Ctx) -> list:
    a = c.attrs  # our pads [top, left, bottom, right] are ONNX's [h_begin, w_begin, h_end, w_end]
    return _image_op(c, "Conv", c.x, strides=_ints(a["stride"]), pads=_ints(a["pads"]),
                     dilations=_ints(a["dilation"]), group=int(a["groups"]),
                     kernel_shape=[int(s) for s in c.vin[1].shape[2:]])


def _conv2d_transpose(c: Ctx) -> list:
    a = c.attrs  # weight [C_in, C_out / groups, kh, kw], as ONNX's ConvTranspose
    return _image_op(c, "ConvTranspose", c.x, strides=_ints(a["stride"]), pads=_ints(a["pads"]),
                     dilations=_ints(a["dilation"]), group=int(a["groups"]),
                     output_padding=_ints(a["output_padding"]),
                     kernel_shape=[int(s) for s in c.vin[1].shape[2:]])


def _pool(c: Ctx, op_type: str, x: str, dilation: Sequence[int], **attrs: Any) -> str:
    """MaxPool / AveragePool with our ceil_mode (PyTorch's: the last window must start inside the input or
    the leading padding).  ONNX's ceil mode keeps a window that starts in the trailing padding; where that
    adds a window, it is sliced off (static sizes; a dynamic size trusts ONNX's rule)."""
    a, e = c.attrs, c.e
    kernel, stride, pads = _ints(a["kernel"]), _ints(a["stride"]), _ints(a["pads"])
    ceil = bool(a["ceil_mode"])
    y = _image_op(c, op_type, [x], kernel_shape=kernel, strides=stride, pads=pads, ceil_mode=int(ceil), **attrs)[0]
    if not ceil:
        return y
    out_shape = c.vout[0].shape
    extra_axes, ends = [], []
    for k in range(2):
        size = c.shape[-2 + k]
        if size is None:
            continue
        eff = dilation[k] * (kernel[k] - 1) + 1
        span = size + pads[k] + pads[k + 2] - eff
        if -(-span // stride[k]) + 1 != out_shape[-2 + k]:  # ONNX's ceil count differs from ours
            extra_axes.append(len(c.shape) - 2 + k)
            ends.append(out_shape[-2 + k])
    if extra_axes:
        y = e.emit("Slice", [y, e.const([0] * len(ends)), e.const(ends), e.const(extra_axes)])
    return y


def _max_pool2d(c: Ctx) -> list:
    a, e = c.attrs, c.e
    x = c.x[0]
    wide = c.dt in ("int32", "int64")  # MaxPool's integer types are int8/uint8; float64 holds int32 exactly
    if wide:
        x = e.cast(x, c.dt, "float64")
    y = _pool(c, "MaxPool", x, _ints(a["dilation"]), dilations=_ints(a["dilation"]))
    return [e.cast(y, "float64", c.dt) if wide else y]


def _avg_pool2d(c: Ctx) -> list:
    return [_pool(c, "AveragePool", c.x[0], [1, 1], count_include_pad=int(bool(c.attrs["count_include_pad"])))]


def _softmax(op_type: str) -> Mapping:
    return lambda c: [c.e.emit(op_type, c.x, axis=int(c.attrs.get("axis", -1)))]


def _layer_norm(c: Ctx) -> list:
    e = c.e
    axis = int(c.attrs.get("axis", -1))
    r = len(c.shape)
    norm_shape = c.shape[axis % r:]
    if None in norm_shape:
        scale = e.emit("ConstantOfShape", [e.shape_of(c.x[0], c.shape, axis % r)],
                       value=onnx_module().helper.make_tensor("one", elem_type(c.dt), [1], [1.0]))
    else:
        scale = e.const(np.ones(norm_shape), c.dt)
    return [e.emit("LayerNormalization", [c.x[0], scale], axis=axis, epsilon=float(c.attrs.get("eps", 1e-5)))]


def _refuse(why: str) -> Mapping:
    def f(c: Ctx) -> list:
        raise c.fail(why)
    return f
