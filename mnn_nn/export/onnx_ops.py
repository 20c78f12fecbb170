"""ONNX op handlers: elementwise math, activations, tensor movement, indexing, reductions.

Each handler maps one ONNX op (opset 1-21 semantics, attribute defaults from the ONNX
spec) onto ``mnn_expr`` functions; see :mod:`mnn_nn.export.onnx_import` for how nodes
run and what ``n`` (a :class:`~mnn_nn.export.onnx_import.NodeCall`) offers.

>>> from mnn_nn.export.onnx_import import SUPPORTED_OPS
>>> {"Add", "Reshape", "ReduceMean"} <= SUPPORTED_OPS
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .onnx_import import NodeCall, _const_var, onnx_dtype, register

# ---- helpers --------------------------------------------------------------------------------------


def norm_axis(axis: int, ndim: int, n: NodeCall) -> int:
    """``axis`` in ``[0, ndim)``; ValueError naming the node when out of range."""
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1):
        raise n.error(f"axis {axis} is out of range for a {ndim}-d input")
    return axis % ndim if ndim else 0


def prim(op: str, inputs: Sequence[Any], **attrs: Any) -> Var:
    """One output of primitive ``op`` (see ``mnn_expr.OP_TABLE``)."""
    return F.apply(op, list(inputs), **attrs)[0]


def reshape(x: Var, shape: Sequence[int]) -> Var:
    return prim("reshape", [x], shape=[int(d) for d in shape])


def const(arr: Any, dtype: Optional[str] = None) -> Var:
    """A constant Var from numpy data (in ``dtype``)."""
    arr = np.asarray(arr)
    if dtype is not None and dtype != "bfloat16":
        arr = arr.astype(F.as_dtype(dtype).numpy)
    return _const_var(arr, dtype)


def same_dtype(v: Var, like: Var) -> Var:
    return v if v.dtype == like.dtype else F.cast(v, like.dtype)


def scalar_like(value: float, like: Var) -> Var:
    """A 0-d constant of ``like``'s dtype."""
    return const(np.array(value), like.dtype.name)


def prod(xs: Sequence[int]) -> int:
    out = 1
    for d in xs:
        out *= int(d)
    return out


def _axes_arg(n: NodeCall, input_index: int, from_input: bool) -> Optional[list]:
    """Axes from input ``input_index`` (newer opsets) or the ``axes`` attribute (older ones)."""
    if from_input:
        return n.ints(input_index) if n.has(input_index) else None
    return n.attr("axes")


# ---- elementwise ------------------------------------------------------------------------------------

_UNARY = {
    "Abs": "abs", "Neg": "negative", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Reciprocal": "reciprocal",
    "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign", "Sin": "sin", "Cos": "cos", "Tan": "tan",
    "Asin": "arcsin", "Acos": "arccos", "Atan": "arctan", "Sinh": "sinh", "Cosh": "cosh", "Asinh": "arcsinh",
    "Acosh": "arccosh", "Atanh": "arctanh", "Erf": "erf", "Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu",
    "Softplus": "softplus", "Softsign": "softsign", "Not": "logical_not", "IsNaN": "isnan",
    "BitwiseNot": "bitwise_not",
}


def _unary(n: NodeCall) -> Var:
    x = n.x(0)
    return F.UNARY_FUNCS[_UNARY[n.op_type]](x)


register(*_UNARY)(_unary)

_BINARY = {
    "Add": "add", "Sub": "subtract", "Mul": "multiply", "Equal": "equal", "Less": "less", "Greater": "greater",
    "LessOrEqual": "less_equal", "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or",
    "Xor": "logical_xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}


def _binary(n: NodeCall) -> Var:
    return F.BINARY_FUNCS[_BINARY[n.op_type]](n.x(0), n.x(1))


register(*_BINARY)(_binary)


@register("Div")
def _div(n: NodeCall) -> Var:
    a, b = n.x(0), n.x(1)
    if a.dtype.is_integer and b.dtype.is_integer:  # C division: truncates toward zero, exactly
        return F.floor_divide(a - F.fmod(a, b), b)
    return F.divide(a, b)


@register("Pow")
def _pow(n: NodeCall) -> Var:
    a = n.x(0)
    return same_dtype(F.power(a, n.x(1)), a)  # the result has the base's type


@register("Mod")
def _mod(n: NodeCall) -> Var:
    a, b = n.x(0), n.x(1)
    return F.fmod(a, b) if n.attr("fmod", 0) else F.mod(a, b)  # fmod=0: the sign of the divisor


@register("BitShift")
def _bitshift(n: NodeCall) -> Var:
    d = n.attr("direction")
    if d not in ("LEFT", "RIGHT"):
        raise n.error(f"direction must be LEFT or RIGHT, got {d!r}")
    return (F.left_shift if d == "LEFT" else F.right_shift)(n.x(0), n.x(1))


def _variadic(n: NodeCall, fn: Any) -> Var:
    xs = [v for v in n.inputs if v is not None]
    out = xs[0]
    for v in xs[1:]:
        out = fn(out, v)
    return out


@register("Max")
def _max(n: NodeCall) -> Var:
    return _variadic(n, F.maximum)


@register("Min")
def _min(n: NodeCall) -> Var:
    return _variadic(n, F.minimum)


@register("Sum")
def _sum(n: NodeCall) -> Var:
    return _variadic(n, F.add)


@register("Mean")
def _mean(n: NodeCall) -> Var:
    s = _variadic(n, F.add)
    k = len([v for v in n.inputs if v is not None])
    return same_dtype(s / k, s) if k > 1 else s


@register("IsInf")
def _isinf(n: NodeCall) -> Var:
    x = n.x(0)
    neg, pos = n.attr("detect_negative", 1), n.attr("detect_positive", 1)
    inf = F.isinf(x)
    if neg and pos:
        return inf
    if not neg and not pos:
        return F.logical_and(inf, False)
    return F.logical_and(inf, x > 0 if pos else x < 0)


@register("Clip")
def _clip(n: NodeCall) -> Var:
    x = n.x(0)
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
    else:
        lo, hi = n.x(1), n.x(2)
    if lo is not None:
        x = F.maximum(x, same_dtype(lo, x) if isinstance(lo, Var) else lo)
    if hi is not None:
        x = F.minimum(x, same_dtype(hi, x) if isinstance(hi, Var) else hi)
    return x


@register("Where")
def _where(n: NodeCall) -> Var:
    return F.where(n.x(0), n.x(1), n.x(2))


# ---- activations without a primitive of their own ------------------------------------------------------


@register("LeakyRelu")
def _leaky_relu(n: NodeCall) -> Var:
    x = n.x(0)
    return F.where(x < 0, x * n.attr("alpha", 0.01), x)


@register("PRelu")
def _prelu(n: NodeCall) -> Var:
    x, slope = n.x(0), n.x(1)
    return F.where(x < 0, x * slope, x)


@register("Elu")
def _elu(n: NodeCall) -> Var:
    x = n.x(0)
    return F.where(x < 0, F.expm1(x) * n.attr("alpha", 1.0), x)


@register("Selu")
def _selu(n: NodeCall) -> Var:
    x = n.x(0)
    alpha, gamma = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
    return F.where(x <= 0, F.expm1(x) * (alpha * gamma), x * gamma)


@register("Celu")
def _celu(n: NodeCall) -> Var:
    x = n.x(0)
    a = n.attr("alpha", 1.0)
    return F.where(x < 0, F.expm1(x / a) * a, x)


@register("HardSigmoid")
def _hard_sigmoid(n: NodeCall) -> Var:
    x = n.x(0)
    return F.clip(x * n.attr("alpha", 0.2) + n.attr("beta", 0.5), 0.0, 1.0)


@register("HardSwish")
def _hard_swish(n: NodeCall) -> Var:
    return F.hard_swish(n.x(0))


@register("Gelu")
def _gelu(n: NodeCall) -> Var:
    approx = n.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise n.error(f"approximate must be 'none' or 'tanh', got {approx!r}")
    return (F.gelu if approx == "none" else F.gelu_tanh)(n.x(0))


@register("Mish")
def _mish(n: NodeCall) -> Var:
    x = n.x(0)
    return x * F.tanh(F.softplus(x))


@register("Swish")
def _swish(n: NodeCall) -> Var:
    x = n.x(0)
    alpha = n.attr("alpha", 1.0)
    return F.silu(x) if alpha == 1.0 else x * F.sigmoid(x * alpha)


@register("ThresholdedRelu")
def _thresholded_relu(n: NodeCall) -> Var:
    x = n.x(0)
    return F.where(x > n.attr("alpha", 1.0), x, scalar_like(0, x))


@register("Shrink")
def _shrink(n: NodeCall) -> Var:
    x = n.x(0)
    bias, lambd = n.attr("bias", 0.0), n.attr("lambd", 0.5)
    zero = scalar_like(0, x)
    return F.where(x < -lambd, same_dtype(x + bias, x), F.where(x > lambd, same_dtype(x - bias, x), zero))


@register("Softmax", "LogSoftmax", "Hardmax")
def _softmax(n: NodeCall) -> Var:
    x = n.x(0)
    new = n.opset >= 13
    axis = norm_axis(n.attr("axis", -1 if new else 1), max(x.ndim, 1), n)
    shape = x.shape
    if not new and x.ndim:  # coerced to 2-d [prod(shape[:axis]), prod(shape[axis:])]
        x = reshape(x, [prod(shape[:axis]), prod(shape[axis:])])
        axis = 1
    if n.op_type == "Hardmax":
        if x.ndim == 0:
            y = F.ones_like(x)
        else:
            idx = F.argmax(x, axis=axis, keepdims=True)
            pos = [1] * x.ndim
            pos[axis] = x.shape[axis]
            y = F.cast(F.equal(idx, const(np.arange(x.shape[axis]).reshape(pos), "int64")), x.dtype)
    else:
        y = (F.softmax if n.op_type == "Softmax" else F.log_softmax)(x, axis)
    return reshape(y, shape) if y.shape != shape else y


# ---- types, constants --------------------------------------------------------------------------------


@register("Cast")
def _cast(n: NodeCall) -> Var:
    to = n.attr("to")
    if isinstance(to, str):  # opset 1 spells the type by name
        to = {"FLOAT": 1, "UINT8": 2, "INT8": 3, "INT32": 6, "INT64": 7, "BOOL": 9, "FLOAT16": 10,
              "DOUBLE": 11}.get(to.upper(), 0)
    dt = onnx_dtype(to, n.label)
    x = n.x(0)
    return F.cast(x, dt)


@register("CastLike")
def _cast_like(n: NodeCall) -> Var:
    return F.cast(n.x(0), n.x(1).dtype)


@register("Identity")
def _identity(n: NodeCall) -> Var:
    return n.x(0)


def _sparse_to_dense(sp: Any) -> tuple[np.ndarray, int]:
    from .onnx_import import _tensor_to_numpy

    vals = _tensor_to_numpy(sp.values)
    idx = _tensor_to_numpy(sp.indices).astype(np.int64)
    dims = [int(d) for d in sp.dims]
    out = np.zeros(dims, dtype=vals.dtype)
    flat = out.reshape(-1)
    if idx.ndim == 2:
        idx = np.ravel_multi_index(tuple(idx.T), dims)
    flat[idx.reshape(-1)] = vals.reshape(-1)
    return out, int(sp.values.data_type)


@register("Constant")
def _constant(n: NodeCall) -> Var:
    a = n.attrs
    if "value" in a:
        arr, t = a["value"]
        return const(arr, onnx_dtype(t, n.label))
    if "value_float" in a:
        return const(np.array(a["value_float"], np.float32))
    if "value_floats" in a:
        return const(np.array(a["value_floats"], np.float32))
    if "value_int" in a:
        return const(np.array(a["value_int"], np.int64))
    if "value_ints" in a:
        return const(np.array(a["value_ints"], np.int64))
    if "sparse_value" in a:
        arr, t = _sparse_to_dense(a["sparse_value"])
        return const(arr, onnx_dtype(t, n.label))
    raise n.fail("string constants are not supported")


@register("ConstantOfShape", static=True)
def _constant_of_shape(n: NodeCall) -> Var:
    shape = n.ints(0)
    val = n.attr("value")
    if val is None:
        return const(np.zeros(shape, np.float32))
    arr, t = val
    dt = onnx_dtype(t, n.label)
    return const(np.full(shape, arr.reshape(-1)[0], dtype=arr.dtype), dt)


@register("EyeLike", static=True)
def _eye_like(n: NodeCall) -> Var:
    x = n.x(0)
    if x.ndim != 2:
        raise n.error(f"input must be 2-d, got shape {x.shape}")
    t = n.attr("dtype")
    dt = x.dtype.name if t is None else onnx_dtype(t, n.label)
    return const(np.eye(x.shape[0], x.shape[1], n.attr("k", 0)), dt)


@register("Range", static=True)
def _range(n: NodeCall) -> Var:
    start, limit, delta = (np.asarray(n.value(i)).reshape(()) for i in range(3))
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    dt = n.x(0).dtype.name
    vals = start.astype(np.float64) + np.arange(count, dtype=np.float64) * delta.astype(np.float64) \
        if n.x(0).dtype.is_floating else start + np.arange(count, dtype=np.int64) * delta
    return const(vals, dt)


@register("Shape", static=True)
def _shape(n: NodeCall) -> Var:
    shape = list(n.x(0).shape)
    r = len(shape)
    start, end = n.attr("start", 0), n.attr("end", r)
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    return const(np.array(shape[start:end], np.int64))


@register("Size", static=True)
def _size(n: NodeCall) -> Var:
    return const(np.array(prod(n.x(0).shape), np.int64))


@register("Dropout")
def _dropout(n: NodeCall) -> list:
    x = n.x(0)
    if n.opset >= 12:
        training = n.has(2) and bool(np.asarray(n.value(2)).reshape(-1)[0])
        ratio = float(np.asarray(n.value(1)).reshape(-1)[0]) if n.has(1) else 0.5
    else:
        training, ratio = not n.attr("is_test", 1) if n.opset < 7 else False, n.attr("ratio", 0.5)
    if training and ratio > 0:
        raise n.fail("training-mode dropout (random masks) is not supported; export the model in eval mode")
    outs = [x]
    if n.wants(1):
        outs.append(const(np.ones(x.shape, bool)))
    return outs


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
    axes = _axes_arg(n, 1, n.opset >= 13)
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
    axes = _axes_arg(n, 1, n.opset >= 13) or []
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
    axes = _axes_arg(n, 1, from_input)
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
