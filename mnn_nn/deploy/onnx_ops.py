"""ONNX op handlers: elementwise math, activations, casts and constants; helpers for the other handler modules.

Each handler maps one ONNX op (opset 1-21 semantics, attribute defaults from the ONNX
spec) onto ``mnn_expr`` functions; see :mod:`mnn_nn.deploy.onnx_import` for how nodes
run and what ``n`` (a :class:`~mnn_nn.deploy.onnx_import.NodeCall`) offers.

>>> from mnn_nn.deploy.onnx_import import SUPPORTED_OPS
>>> {"Add", "Gelu", "Cast", "Shape"} <= SUPPORTED_OPS
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


def axes_arg(n: NodeCall, input_index: int, from_input: bool) -> Optional[list]:
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
def _identity(n: NodeCall) -> list:
    return [n.x(0)]  # (a sequence value is a list: wrapped, so it stays one output)


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


# ---- quantisation (QDQ) -------------------------------------------------------------------------------


def _q_param(v: Var, x: Var, axis: int, block: int, n: NodeCall) -> Var:
    """A scale or zero point shaped to broadcast over ``x``: per tensor, per ``axis`` or per block of ``axis``."""
    if v.ndim == 0 or v.size == 1 and v.ndim <= 1 and not block:
        return reshape(v, [])
    ax = norm_axis(axis, x.ndim, n)
    if v.ndim == 1 and not block:
        return reshape(v, [-1] + [1] * (x.ndim - 1 - ax))
    if block <= 0 or v.ndim != x.ndim:
        raise n.error(f"scale of shape {v.shape} does not fit input {x.shape} (axis {axis}, block_size {block})")
    if v.shape[ax] * block < x.shape[ax]:
        raise n.error(f"block_size {block} with scale {v.shape} does not cover input {x.shape}")
    full = F.repeat(v, block, axis=ax)  # one scale per element, then cut to the input
    return prim("slice", [full], begins=[0] * x.ndim, ends=list(x.shape), steps=[1] * x.ndim)


@register("DequantizeLinear")
def _dequantize_linear(n: NodeCall) -> Var:
    x, scale = n.x(0), n.x(1)
    axis, block = n.attr("axis", 1), n.attr("block_size", 0)
    t = n.attr("output_dtype", 0)
    out = onnx_dtype(t, n.label) if t else scale.dtype.name
    s = _q_param(scale if scale.dtype.name == out else F.cast(scale, out), x, axis, block, n)
    if n.has(2):
        zp = _q_param(n.x(2), x, axis, block, n)
        v = F.cast(x, "int32") - F.cast(zp, "int32") if x.dtype.name != "int32" else x - zp
    else:
        v = x
    return F.cast(v, out) * s


@register("QuantizeLinear")
def _quantize_linear(n: NodeCall) -> Var:
    x, scale = n.x(0), n.x(1)
    axis, block = n.attr("axis", 1), n.attr("block_size", 0)
    t = n.attr("output_dtype", 0)
    out = n.x(2).dtype.name if n.has(2) else (onnx_dtype(t, n.label) if t else "uint8")
    if out not in ("uint8", "int8"):
        raise n.fail(f"quantizing to {out} is not supported (uint8 and int8 are)")
    info = np.iinfo(np.dtype(out))
    q = F.round(F.cast(x, scale.dtype) / _q_param(scale, x, axis, block, n))  # halves to even
    if n.has(2):
        q = q + F.cast(_q_param(n.x(2), x, axis, block, n), q.dtype)
    return F.cast(F.clip(q, float(info.min), float(info.max)), out)
