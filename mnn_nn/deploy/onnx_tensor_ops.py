"""ONNX op handlers: tensor movement, indexing, reductions and matrix products.

Shape-deciding inputs (``Reshape``'s shape, ``Slice``'s bounds, ``Expand``'s shape, axes
given as inputs, ...) are taken with ``n.ints(i)``: known constants directly, values read
only when ONNX makes the output shape depend on them.

>>> from mnn_nn.deploy.onnx_import import SUPPORTED_OPS
>>> {"Reshape", "Gather", "ReduceMean", "Einsum"} <= SUPPORTED_OPS
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .onnx_import import NodeCall, register
from .onnx_ops import axes_arg, const, norm_axis, prim, prod, reshape, same_dtype, scalar_like

# ---- movement -------------------------------------------------------------------------------------


def _reshape_target(in_shape: Sequence[int], shape: Sequence[int], allowzero: bool, n: NodeCall) -> list:
    out = [int(in_shape[i]) if d == 0 and not allowzero else int(d) for i, d in enumerate(shape)]
    if out.count(-1) > 1:
        raise n.error(f"at most one -1 in the target shape, got {list(shape)}")
    if -1 in out:
        known = prod(d for d in out if d != -1)
        total = prod(in_shape)
        if known == 0 or total % known:
            raise n.error(f"cannot reshape {tuple(in_shape)} to {list(shape)}")
        out[out.index(-1)] = total // known
    if prod(out) != prod(in_shape):
        raise n.error(f"cannot reshape {tuple(in_shape)} to {list(shape)}")
    return out


@register("Reshape")
def _reshape(n: NodeCall) -> Var:
    x = n.x(0)
    shape = n.attr("shape") if n.opset < 5 else n.ints(1)
    return reshape(x, _reshape_target(x.shape, shape, bool(n.attr("allowzero", 0)), n))


@register("Flatten")
def _flatten(n: NodeCall) -> Var:
    x = n.x(0)
    axis = n.attr("axis", 1)
    if not -x.ndim <= axis <= x.ndim:
        raise n.error(f"axis {axis} is out of range for a {x.ndim}-d input")
    axis = axis + x.ndim if axis < 0 else axis
    return reshape(x, [prod(x.shape[:axis]), prod(x.shape[axis:])])


@register("Transpose")
def _transpose(n: NodeCall) -> Var:
    x = n.x(0)
    perm = n.attr("perm")
    return F.transpose(x, list(range(x.ndim))[::-1] if perm is None else perm)


@register("Squeeze")
def _squeeze(n: NodeCall) -> Var:
    x = n.x(0)
    axes = axes_arg(n, 1, n.opset >= 13)
    if not axes:
        return reshape(x, [d for d in x.shape if d != 1])
    axes = {norm_axis(a, x.ndim, n) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise n.error(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})")
    return reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


@register("Unsqueeze")
def _unsqueeze(n: NodeCall) -> Var:
    x = n.x(0)
    axes = axes_arg(n, 1, n.opset >= 13) or []
    r = x.ndim + len(axes)
    pos = {norm_axis(a, r, n) for a in axes}
    if len(pos) != len(axes):
        raise n.error(f"repeated axis in {axes}")
    it = iter(x.shape)
    return reshape(x, [1 if i in pos else next(it) for i in range(r)])


@register("Concat")
def _concat(n: NodeCall) -> Var:
    xs = [v for v in n.inputs if v is not None]
    axis = norm_axis(n.attr("axis", 0), xs[0].ndim, n)
    return F.concatenate(xs, axis)


@register("Split")
def _split(n: NodeCall) -> list:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", 0), x.ndim, n)
    size = x.shape[axis]
    sizes = n.ints(1) if (n.opset >= 13 and n.has(1)) else (n.attr("split") if n.opset < 13 else None)
    if not sizes:
        k = n.attr("num_outputs") or n.n_outputs
        if n.attr("num_outputs"):
            chunk = -(-size // k)
            sizes = [chunk] * (k - 1) + [size - chunk * (k - 1)]
        else:
            if size % k:
                raise n.error(f"axis of size {size} does not split into {k} equal parts")
            sizes = [size // k] * k
    if sum(sizes) != size or any(s < 0 for s in sizes):
        raise n.error(f"split sizes {sizes} do not add up to the axis size {size}")
    return F.split(x, size_splits=sizes, axis=axis)


def slice_axes(x: Var, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int], steps: Sequence[int],
               n: NodeCall) -> Var:
    """ONNX Slice semantics (clamping rules included) on the native slice primitive."""
    begins, stops, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, x.ndim, n)
        dim = x.shape[a]
        if st == 0:
            raise n.error("slice steps must not be 0")
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        else:
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
            if e == -1:
                e = -dim - 1  # "before the first element" in the primitive's (NumPy) convention
        begins[a], stops[a], strides[a] = s, e, st
    return prim("slice", [x], begins=begins, ends=stops, steps=strides)


@register("Slice")
def _slice(n: NodeCall) -> Var:
    x = n.x(0)
    if n.opset < 10:
        starts, ends = n.attr("starts"), n.attr("ends")
        axes, steps = n.attr("axes"), None
    else:
        starts, ends = n.ints(1), n.ints(2)
        axes = n.ints(3) if n.has(3) else None
        steps = n.ints(4) if n.has(4) else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    return slice_axes(x, starts, ends, axes, steps, n)


@register("Expand")
def _expand(n: NodeCall) -> Var:
    x = n.x(0)
    shape = n.ints(1)
    try:
        out = np.broadcast_shapes(tuple(x.shape), tuple(shape))
    except ValueError:
        raise n.error(f"cannot expand shape {x.shape} to {shape}") from None
    return F.broadcast_to(x, out) if out != x.shape else x


@register("Tile")
def _tile(n: NodeCall) -> Var:
    x = n.x(0)
    reps = n.ints(1)
    if len(reps) != x.ndim:
        raise n.error(f"repeats {reps} must have one entry per dim of shape {x.shape}")
    return F.tile(x, reps)


@register("Pad")
def _pad(n: NodeCall) -> Var:
    x = n.x(0)
    mode = n.attr("mode", "constant")
    if n.opset < 11:
        pads, value, axes = n.attr("pads") or n.attr("paddings"), n.attr("value", 0.0), None
    else:
        pads = n.ints(1)
        value = np.asarray(n.value(2)).reshape(-1)[0] if n.has(2) else 0
        axes = n.ints(3) if n.has(3) else None
    axes = list(range(x.ndim)) if axes is None else [norm_axis(a, x.ndim, n) for a in axes]
    if len(pads) != 2 * len(axes):
        raise n.error(f"pads {pads} must have 2 values per padded axis ({len(axes)} axes)")
    pairs = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        pairs[a] = [pads[i], pads[i + len(axes)]]
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise n.error(f"unknown mode {mode!r}")
    pos = [max(p, 0) for pair in pairs for p in pair]
    y = x
    if any(pos):
        y = prim("pad", [x], pads=pos, mode=mode, value=float(value))
    if any(p < 0 for pair in pairs for p in pair):  # negative pads crop
        starts = [-min(b, 0) for b, _ in pairs]
        ends = [y.shape[i] + min(e, 0) for i, (_, e) in enumerate(pairs)]
        y = prim("slice", [y], begins=starts, ends=ends, steps=[1] * x.ndim)
    return y


@register("DepthToSpace")
def _depth_to_space(n: NodeCall) -> Var:
    x = n.x(0)
    b = n.attr("blocksize")
    N, C, H, W = x.shape
    if n.attr("mode", "DCR") == "DCR":
        y = F.transpose(reshape(x, [N, b, b, C // (b * b), H, W]), [0, 3, 4, 1, 5, 2])
    else:
        y = F.transpose(reshape(x, [N, C // (b * b), b, b, H, W]), [0, 1, 4, 2, 5, 3])
    return reshape(y, [N, C // (b * b), H * b, W * b])


@register("SpaceToDepth")
def _space_to_depth(n: NodeCall) -> Var:
    x = n.x(0)
    b = n.attr("blocksize")
    N, C, H, W = x.shape
    perm = [0, 3, 5, 1, 2, 4] if n.attr("mode", "DCR") == "DCR" else [0, 1, 3, 5, 2, 4]
    y = F.transpose(reshape(x, [N, C, H // b, b, W // b, b]), perm)
    return reshape(y, [N, C * b * b, H // b, W // b])


@register("Trilu")
def _trilu(n: NodeCall) -> Var:
    x = n.x(0)
    k = int(np.asarray(n.value(1)).reshape(-1)[0]) if n.has(1) else 0
    rows, cols = x.shape[-2], x.shape[-1]
    ones = np.ones((rows, cols), bool)
    mask = np.triu(ones, k) if n.attr("upper", 1) else np.tril(ones, k)
    return F.where(const(mask), x, scalar_like(0, x))


# ---- indexing -------------------------------------------------------------------------------------------


def _index_var(n: NodeCall, i: int) -> Var:
    idx = n.x(i)
    if not idx.dtype.is_integer:
        raise n.error(f"indices must be integers, got {idx.dtype}")
    return idx


@register("Gather")
def _gather(n: NodeCall) -> Var:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", 0), x.ndim, n)
    return prim("gather", [x, _index_var(n, 1)], axis=axis)


@register("GatherElements")
def _gather_elements(n: NodeCall) -> Var:
    x = n.x(0)
    return prim("take_along_axis", [x, _index_var(n, 1)], axis=norm_axis(n.attr("axis", 0), x.ndim, n))


def _batched_nd(x: Var, idx: Var, b: int) -> tuple[Var, Var, list]:
    """``batch_dims`` of GatherND/ScatterND folded into one leading dim whose index is prepended."""
    batch = list(x.shape[:b])
    nb = prod(batch)
    x2 = reshape(x, [nb] + list(x.shape[b:]))
    inner = list(idx.shape[b:])
    idx2 = reshape(idx, [nb] + inner)
    bidx = const(np.arange(nb).reshape([nb] + [1] * (len(inner) - 1) + [1]), idx.dtype.name)
    bidx = F.broadcast_to(bidx, [nb] + inner[:-1] + [1])
    return x2, F.concatenate([bidx, idx2], axis=-1), batch


@register("GatherND")
def _gather_nd(n: NodeCall) -> Var:
    x, idx = n.x(0), _index_var(n, 1)
    b = n.attr("batch_dims", 0)
    if b == 0:
        return prim("gather_nd", [x, idx])
    x2, idx2, batch = _batched_nd(x, idx, b)
    y = prim("gather_nd", [x2, idx2])
    return reshape(y, batch + list(y.shape[1:]))


_REDUCTIONS = {"none", "add", "mul", "max", "min"}


@register("ScatterElements", "Scatter")
def _scatter_elements(n: NodeCall) -> Var:
    x = n.x(0)
    red = n.attr("reduction", "none")
    if red not in _REDUCTIONS:
        raise n.error(f"unknown reduction {red!r}")
    return F.scatter(x, _index_var(n, 1), n.x(2), axis=norm_axis(n.attr("axis", 0), x.ndim, n), reduction=red)


@register("ScatterND")
def _scatter_nd(n: NodeCall) -> Var:
    red = n.attr("reduction", "none")
    if red not in _REDUCTIONS:
        raise n.error(f"unknown reduction {red!r}")
    x = n.x(0)
    return prim("scatter_nd", [x, _index_var(n, 1), same_dtype(n.x(2), x)], reduction=red)


@register("OneHot")
def _one_hot(n: NodeCall) -> Var:
    idx, values = n.x(0), n.x(2)
    depth = int(np.asarray(n.value(1)).reshape(-1)[0])
    if not idx.dtype.is_integer:
        idx = F.cast(idx, "int64")
    idx = F.where(idx < 0, idx + depth, idx)
    ax = norm_axis(n.attr("axis", -1), idx.ndim + 1, n)
    pos = [1] * (idx.ndim + 1)
    pos[ax] = depth
    hit = F.equal(reshape(idx, list(idx.shape[:ax]) + [1] + list(idx.shape[ax:])),
                  const(np.arange(depth).reshape(pos), idx.dtype.name))
    off = reshape(prim("slice", [values], begins=[0], ends=[1], steps=[1]), [])
    on = reshape(prim("slice", [values], begins=[1], ends=[2], steps=[1]), [])
    return F.where(hit, on, off)


@register("NonZero", static=True)
def _nonzero(n: NodeCall) -> Var:
    arr = n.value(0)  # the output shape depends on the values
    return const(np.array(np.nonzero(arr), dtype=np.int64).reshape(arr.ndim, -1))


@register("Compress")
def _compress(n: NodeCall) -> Var:
    x = n.x(0)
    cond = np.asarray(n.value(1)).astype(bool).reshape(-1)
    axis = n.attr("axis")
    if axis is None:
        x, axis = reshape(x, [-1]), 0
    axis = norm_axis(axis, x.ndim, n)
    keep = np.nonzero(cond[: x.shape[axis]])[0].astype(np.int64)
    return prim("gather", [x, const(keep)], axis=axis)


@register("ReverseSequence")
def _reverse_sequence(n: NodeCall) -> Var:
    x, lens = n.x(0), n.x(1)
    ta, ba = n.attr("time_axis", 0), n.attr("batch_axis", 1)
    T = x.shape[ta]
    shape = [1] * x.ndim
    shape[ta] = T
    t = const(np.arange(T).reshape(shape), "int64")
    lshape = [1] * x.ndim
    lshape[ba] = x.shape[ba]
    ln = reshape(F.cast(lens, "int64"), lshape)
    idx = F.where(t < ln, ln - 1 - t, t)
    idx = F.broadcast_to(idx, x.shape)
    return prim("take_along_axis", [x, idx], axis=ta)


# ---- reductions -------------------------------------------------------------------------------------

_EMPTY_VALUE = {"ReduceSum": 0, "ReduceProd": 1, "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceL1": 0,
                "ReduceL2": 0, "ReduceSumSquare": 0, "ReduceLogSum": -np.inf, "ReduceLogSumExp": -np.inf,
                "ReduceMean": np.nan}


def _empty_fill(op: str, dt: Any) -> Any:
    v = _EMPTY_VALUE[op]
    if dt.name == "bool":
        return bool(v > 0)
    if dt.is_integer and not np.isfinite(v):
        info = np.iinfo(dt.numpy)
        return info.min if v < 0 else info.max
    return v


@register("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")
def _reduce(n: NodeCall) -> Var:
    x = n.x(0)
    op = n.op_type
    from_input = n.opset >= 13 if op == "ReduceSum" else n.opset >= 18
    axes = axes_arg(n, 1, from_input)
    keep = bool(n.attr("keepdims", 1))
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.ndim))
    axes = sorted({norm_axis(a, x.ndim, n) for a in axes})
    out_shape = [1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes]
    if prod(x.shape[a] for a in axes) == 0:
        return const(np.full(out_shape, _empty_fill(op, x.dtype)), x.dtype.name)
    if op == "ReduceLogSumExp":
        return same_dtype(F.logsumexp(x, axis=tuple(axes), keepdims=keep), x)
    if x.dtype.name == "bool" and op in ("ReduceMax", "ReduceMin"):
        return prim("reduce_any" if op == "ReduceMax" else "reduce_all", [x], axes=axes, keepdims=keep)
    base = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
            "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_sum",
            "ReduceL2": "reduce_sum", "ReduceSumSquare": "reduce_sum", "ReduceLogSum": "reduce_sum"}[op]
    src = {"ReduceL1": lambda v: F.abs(v), "ReduceL2": lambda v: v * v,
           "ReduceSumSquare": lambda v: v * v}.get(op, lambda v: v)(x)
    y = prim(base, [src], axes=axes, keepdims=keep)
    if op == "ReduceL2":
        y = F.sqrt(y)
    elif op == "ReduceLogSum":
        y = F.log(y)
    return same_dtype(y, x)


@register("ArgMax", "ArgMin")
def _arg(n: NodeCall) -> Var:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", 0), x.ndim, n)
    keep = bool(n.attr("keepdims", 1))
    name = "argmax" if n.op_type == "ArgMax" else "argmin"
    if n.attr("select_last_index", 0):
        i = prim(name, [F.flip(x, axis)], axis=axis, keepdims=keep)
        return (x.shape[axis] - 1) - i
    return prim(name, [x], axis=axis, keepdims=keep)


@register("CumSum", "CumProd")
def _cumulative(n: NodeCall) -> Var:
    x = n.x(0)
    axis = norm_axis(int(np.asarray(n.value(1)).reshape(-1)[0]), x.ndim, n)
    y = prim("cumsum" if n.op_type == "CumSum" else "cumprod", [x], axis=axis,
             exclusive=bool(n.attr("exclusive", 0)), reverse=bool(n.attr("reverse", 0)))
    return same_dtype(y, x)


@register("TopK")
def _topk(n: NodeCall) -> list:
    x = n.x(0)
    k = n.attr("k") if n.opset < 10 else int(np.asarray(n.value(1)).reshape(-1)[0])
    axis = norm_axis(n.attr("axis", -1), x.ndim, n)
    v, i = F.apply("topk", [x], k=int(k), axis=axis, largest=bool(n.attr("largest", 1)))
    return [v, i]


@register("MatMul")
def _matmul(n: NodeCall) -> Var:
    return F.matmul(n.x(0), n.x(1))


@register("Gemm")
def _gemm(n: NodeCall) -> Var:
    a, b, c = n.x(0), n.x(1), n.x(2)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    y = prim("matmul", [a, b], transpose_a=bool(n.attr("transA", 0)), transpose_b=bool(n.attr("transB", 0)))
    if alpha != 1.0:
        y = y * alpha
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else c * beta)
    return y


@register("Einsum")
def _einsum(n: NodeCall) -> Var:
    return F.einsum(n.attr("equation"), *[v for v in n.inputs if v is not None])


@register("LpNormalization")
def _lp_normalization(n: NodeCall) -> Var:
    x = n.x(0)
    axis = norm_axis(n.attr("axis", -1), x.ndim, n)
    p = n.attr("p", 2)
    if p == 1:
        norm = prim("reduce_sum", [F.abs(x)], axes=[axis], keepdims=True)
    elif p == 2:
        norm = F.sqrt(prim("reduce_sum", [x * x], axes=[axis], keepdims=True))
    else:
        raise n.error(f"p must be 1 or 2, got {p}")
    return F.where(norm == 0, scalar_like(0, x), x / norm)


# ---- losses ---------------------------------------------------------------------------------------------


def _nll(n: NodeCall, logp: Var, target: Var, weight: Any) -> Var:
    """ONNX's negative log-likelihood of class scores ``logp`` [N, C, ...] at ``target`` [N, ...]."""
    ignore = n.attr("ignore_index")
    reduction = n.attr("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise n.error(f"reduction must be none, sum or mean, got {reduction!r}")
    keep = None
    if ignore is not None:
        keep = F.not_equal(target, ignore)
        target = F.where(keep, target, const(np.array(0), target.dtype.name))
    t1 = reshape(target, [target.shape[0], 1] + list(target.shape[1:]))
    picked = reshape(prim("take_along_axis", [logp, t1], axis=1), target.shape)
    w = prim("gather", [weight, target], axis=0) if weight is not None else F.ones_like(picked)
    if keep is not None:
        w = F.where(keep, w, scalar_like(0, w))
    loss = -(picked * w)
    if reduction == "none":
        return loss
    total = prim("reduce_sum", [loss], axes=list(range(loss.ndim)), keepdims=False)
    if reduction == "sum":
        return total
    return total / prim("reduce_sum", [w], axes=list(range(w.ndim)), keepdims=False)


@register("NegativeLogLikelihoodLoss")
def _nll_loss(n: NodeCall) -> Var:
    return _nll(n, n.x(0), n.x(1), n.x(2))


@register("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(n: NodeCall) -> list:
    scores = n.x(0)
    logp = F.log_softmax(scores, axis=1)
    return [_nll(n, logp, n.x(1), n.x(2)), logp]


# ---- windows, crops, unpooling ------------------------------------------------------------------------


@register("HannWindow", "HammingWindow", "BlackmanWindow", static=True)
def _window(n: NodeCall) -> Var:
    from .onnx_import import onnx_dtype

    size = int(np.asarray(n.value(0)).reshape(-1)[0])
    denom = size if n.attr("periodic", 1) else size - 1
    k = np.arange(size, dtype=np.float64) * (2 * np.pi / max(denom, 1))
    if n.op_type == "HannWindow":
        w = 0.5 - 0.5 * np.cos(k)
    elif n.op_type == "HammingWindow":
        w = 25 / 46 - 21 / 46 * np.cos(k)
    else:
        w = 0.42 - 0.5 * np.cos(k) + 0.08 * np.cos(2 * k)
    return const(w, onnx_dtype(n.attr("output_datatype", 1), n.label))


@register("CenterCropPad")
def _center_crop_pad(n: NodeCall) -> Var:
    x = n.x(0)
    target = n.ints(1)
    axes = n.attr("axes")
    axes = list(range(x.ndim)) if axes is None else [norm_axis(a, x.ndim, n) for a in axes]
    begins, ends, pads = [0] * x.ndim, list(x.shape), [0] * (2 * x.ndim)
    for a, t in zip(axes, target):
        d = x.shape[a]
        if t < d:  # crop: the window starts at floor((d - t) / 2)
            begins[a] = (d - t) // 2
            ends[a] = begins[a] + t
        elif t > d:  # pad: the odd pixel goes to the end
            pads[2 * a] = (t - d) // 2
            pads[2 * a + 1] = t - d - (t - d) // 2
    y = prim("slice", [x], begins=begins, ends=ends, steps=[1] * x.ndim)
    return prim("pad", [y], pads=pads, mode="constant", value=0.0) if any(pads) else y


@register("MaxUnpool")
def _max_unpool(n: NodeCall) -> Var:
    x, idx = n.x(0), n.x(1)
    k = n.attr("kernel_shape")
    sd = len(k)
    s = n.attr("strides") or [1] * sd
    pads = n.attr("pads") or [0] * (2 * sd)
    inferred = list(x.shape[:2]) + [(x.shape[2 + i] - 1) * s[i] - pads[i] - pads[i + sd] + k[i] for i in range(sd)]
    flat = F.scatter(const(np.zeros(prod(inferred)), x.dtype.name), reshape(F.cast(idx, "int64"), [-1]),
                     reshape(x, [-1]))
    y = reshape(flat, inferred)
    if not n.has(2):
        return y
    shape = n.ints(2)  # indices address the inferred shape; it sits at the start of the requested one
    y = prim("slice", [y], begins=[0] * y.ndim, ends=[min(a, b) for a, b in zip(inferred, shape)],
             steps=[1] * y.ndim)
    grow = [v for a, b in zip(y.shape, shape) for v in (0, max(b - a, 0))]
    return prim("pad", [y], pads=grow, mode="constant", value=0.0) if any(grow) else y
