"""Elementwise math: every unary and binary primitive under its NumPy name,
plus where/clip/cast and the activations written from primitives.

Binary functions broadcast and promote like NumPy 2 (NEP 50): Python scalars
are weak (``int8_var + 1`` stays int8); an integer array meets a Python float
as float32 (NumPy: float64).  True division and the float-only functions
(sqrt, exp, sin, ... ) compute integers in float32.

>>> import mnn_expr as F
>>> F.add(F.array([1, 2]), 1).tolist(), F.floor_divide(F.array([-7]), 2).tolist()
([2, 3], [-4])
"""

from __future__ import annotations

from typing import Any, Callable

from . import _native
from ._core import OP_TABLE
from ._dtype import as_dtype
from ._native import Var
from .creation import asarray

ArrayLike = Any

_UNARY_DOCS = {
    "negative": "-x", "abs": "|x|", "sign": "-1, 0 or 1 by the sign of x (NaN stays NaN)",
    "floor": "largest integer <= x", "ceil": "smallest integer >= x", "round": "nearest integer, halves to even",
    "trunc": "integer part of x", "sqrt": "square root", "rsqrt": "1 / sqrt(x)", "cbrt": "cube root",
    "square": "x * x", "reciprocal": "1 / x (float)", "exp": "e**x", "exp2": "2**x", "expm1": "e**x - 1",
    "log": "natural logarithm", "log2": "base-2 logarithm", "log10": "base-10 logarithm", "log1p": "log(1 + x)",
    "sin": "sine", "cos": "cosine", "tan": "tangent", "arcsin": "inverse sine", "arccos": "inverse cosine",
    "arctan": "inverse tangent", "sinh": "hyperbolic sine", "cosh": "hyperbolic cosine", "tanh": "hyperbolic tangent",
    "arcsinh": "inverse hyperbolic sine", "arccosh": "inverse hyperbolic cosine",
    "arctanh": "inverse hyperbolic tangent",
    "erf": "error function", "erfc": "1 - erf(x)", "erfinv": "inverse error function",
    "sigmoid": "1 / (1 + exp(-x))", "relu": "max(x, 0)", "gelu": "x * Phi(x) (exact, erf form)",
    "gelu_tanh": "GELU, tanh approximation", "silu": "x * sigmoid(x) (swish)", "softplus": "log(1 + exp(x))",
    "softsign": "x / (1 + |x|)", "logical_not": "not x (bool)", "bitwise_not": "~x for integers and bools",
    "isnan": "x is NaN", "isinf": "x is +-inf", "isfinite": "x is neither NaN nor inf",
}
_BINARY_DOCS = {
    "add": "x + y", "subtract": "x - y", "multiply": "x * y", "divide": "x / y (true division; ints -> float32)",
    "floor_divide": "floor(x / y), NumPy's sign rules", "mod": "x - floor(x / y) * y (sign of y, as NumPy)",
    "fmod": "C remainder (sign of x)", "power": "x ** y", "maximum": "elementwise max (NaN propagates)",
    "minimum": "elementwise min (NaN propagates)", "arctan2": "angle of (y=x1, x=x2)", "hypot": "sqrt(x*x + y*y)",
    "copysign": "|x| with the sign of y", "squared_difference": "(x - y) ** 2", "equal": "x == y",
    "not_equal": "x != y", "less": "x < y", "less_equal": "x <= y", "greater": "x > y", "greater_equal": "x >= y",
    "logical_and": "x and y", "logical_or": "x or y", "logical_xor": "x xor y", "bitwise_and": "x & y",
    "bitwise_or": "x | y", "bitwise_xor": "x ^ y", "left_shift": "x << y", "right_shift": "x >> y (arithmetic)",
}


_OP_IDS = {name: i for i, name in enumerate(OP_TABLE)}  # ids skip the native name lookup


def _make_unary(name: str) -> Callable[[ArrayLike], Var]:
    """A native callable ``name(x) -> Var`` (no Python frame on the per-op path)."""
    doc = (f"Elementwise {_UNARY_DOCS[name]}.\n\n"
           f">>> import mnn_expr as F\n>>> F.{name}(F.array([0.5])).shape\n(1,)\n")
    return _native.unary_function(_OP_IDS[name], name, doc)


def _make_binary(name: str) -> Callable[[ArrayLike, ArrayLike], Var]:
    """A native callable ``name(x, y) -> Var`` with broadcasting and NEP 50 promotion."""
    doc = (f"Elementwise {_BINARY_DOCS[name]}, with broadcasting.\n\n"
           f">>> import mnn_expr as F\n>>> F.{name}(F.array([2]), F.array([1])).shape\n(1,)\n")
    return _native.binary_function(_OP_IDS[name], name, doc)


UNARY_FUNCS = {n: _make_unary(n) for n, info in OP_TABLE.items() if info.category == "unary"}
BINARY_FUNCS = {n: _make_binary(n) for n, info in OP_TABLE.items() if info.category == "binary"}
globals().update(UNARY_FUNCS)
globals().update(BINARY_FUNCS)
__all__ = sorted(UNARY_FUNCS) + sorted(BINARY_FUNCS)  # noqa: PLE0605


def where(condition: ArrayLike, x: ArrayLike, y: ArrayLike) -> Var:
    """``x`` where ``condition`` holds, else ``y`` (broadcast; x and y promoted together).

    >>> import mnn_expr as F
    >>> F.where(F.array([True, False]), 1.0, F.array([5.0, 6.0])).tolist()
    [1.0, 6.0]
    """
    return _native.where(condition, x, y)


def cast(x: ArrayLike, dtype: Any) -> Var:
    """``x`` converted to ``dtype`` (floats truncate toward zero; NaN and out-of-range -> the int minimum)."""
    return _native.cast(asarray(x), as_dtype(dtype).name)


def clip(x: ArrayLike, a_min: ArrayLike = None, a_max: ArrayLike = None) -> Var:
    """``x`` limited to ``[a_min, a_max]`` (either bound may be None).

    >>> import mnn_expr as F
    >>> F.clip(F.array([-1.0, 0.5, 3.0]), 0, 1).tolist()
    [0.0, 0.5, 1.0]
    """
    x = asarray(x)
    if a_min is None and a_max is None:
        raise ValueError("clip: at least one of a_min and a_max must be given")
    if a_min is not None:
        x = _native.binary("maximum", x, a_min)
    if a_max is not None:
        x = _native.binary("minimum", x, a_max)
    return x


def true_divide(x: ArrayLike, y: ArrayLike) -> Var:
    """Alias of :func:`divide`."""
    return _native.binary("divide", x, y)


def remainder(x: ArrayLike, y: ArrayLike) -> Var:
    """Alias of :func:`mod` (NumPy's ``remainder``)."""
    return _native.binary("mod", x, y)


def positive(x: ArrayLike) -> Var:
    """``+x``."""
    return asarray(x)


# ---- activations written from primitives ------------------------------------


def relu6(x: ArrayLike, min: float = 0.0, max: float = 6.0) -> Var:  # noqa: A002  (MNN's names)
    """``min(max(x, 0), 6)`` (MNN: ``relu6(x, min, max)``)."""
    return clip(x, min, max)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Var:
    """``x`` if ``x > 0`` else ``negative_slope * x``."""
    x = asarray(x)
    return where(x > 0, x, x * negative_slope)


def prelu(x: ArrayLike, slope: ArrayLike) -> Var:
    """Leaky ReLU with a learned slope per channel (axis 1 for inputs of ndim >= 2)."""
    x, slope = asarray(x), asarray(slope, x.dtype)
    if slope.ndim == 1 and x.ndim >= 2 and slope.shape[0] not in (1,):
        if slope.shape[0] != x.shape[1]:
            raise ValueError(f"prelu: slope of shape {slope.shape} does not match channels of input {x.shape}")
        slope = slope.reshape([slope.shape[0]] + [1] * (x.ndim - 2))
    return where(x > 0, x, x * slope)


def elu(x: ArrayLike, alpha: float = 1.0) -> Var:
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    x = asarray(x)
    return where(x > 0, x, _native.unary("expm1", x) * alpha)


def selu(x: ArrayLike, scale: float = 1.0507009873554805, alpha: float = 1.6732632423543772) -> Var:
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return elu(x, alpha) * scale


def hard_sigmoid(x: ArrayLike) -> Var:
    """``clip(x / 6 + 1 / 2, 0, 1)``."""
    return clip(asarray(x) / 6.0 + 0.5, 0.0, 1.0)


def hard_swish(x: ArrayLike) -> Var:
    """``x * hard_sigmoid(x)``."""
    x = asarray(x)
    return x * hard_sigmoid(x)


def swish(x: ArrayLike) -> Var:
    """Alias of :func:`silu`."""
    return _native.unary("silu", asarray(x))


__all__ += ["where", "cast", "clip", "true_divide", "remainder", "positive", "relu6", "leaky_relu", "prelu",
            "elu", "selu", "hard_sigmoid", "hard_swish", "swish"]


def relu(x: ArrayLike, slope: float = 0.0) -> Var:
    """``max(x, 0)``; with ``slope`` (MNN's signature) a leaky ReLU.

    >>> import mnn_expr as F
    >>> F.relu(F.array([-2.0, 3.0])).tolist(), F.relu(F.array([-2.0]), 0.5).tolist()
    ([0.0, 3.0], [-1.0])
    """
    if slope:
        return leaky_relu(x, slope)
    return UNARY_FUNCS["relu"](x)


def bias_add(value: ArrayLike, bias: ArrayLike) -> Var:
    """``value + bias`` with a 1-d ``bias`` along the last axis (MNN/TF ``bias_add``)."""
    bias = asarray(bias)
    if bias.ndim != 1:
        raise ValueError(f"bias_add: bias must be 1-d, got shape {bias.shape}")
    return _native.binary("add", value, bias)


def _eltwise(op: str, name: str) -> Callable[..., Var]:
    def f(x: ArrayLike, y: ArrayLike, coeff: Any = ()) -> Var:
        if op == "add" and coeff:
            c = list(coeff)
            if len(c) != 2:
                raise ValueError(f"eltwise_sum: coeff must hold 2 values, got {c}")
            return _native.binary("add", _native.binary("multiply", x, float(c[0])),
                                  _native.binary("multiply", y, float(c[1])))
        return _native.binary(op, x, y)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"MNN's ``{f.__name__}(x, y, coeff)``: elementwise {op}."
    return f


# MNN's names (mnn_api.md §1.3) where they differ from NumPy's.
floordiv = BINARY_FUNCS["floor_divide"]
floormod = BINARY_FUNCS["mod"]
pow = BINARY_FUNCS["power"]  # noqa: A001
atan2 = BINARY_FUNCS["arctan2"]
asin, acos, atan = UNARY_FUNCS["arcsin"], UNARY_FUNCS["arccos"], UNARY_FUNCS["arctan"]
asinh, acosh, atanh = UNARY_FUNCS["arcsinh"], UNARY_FUNCS["arccosh"], UNARY_FUNCS["arctanh"]
absolute = fabs = UNARY_FUNCS["abs"]
invert = UNARY_FUNCS["bitwise_not"]
eltwise_prod = _eltwise("multiply", "eltwise_prod")
eltwise_sum = _eltwise("add", "eltwise_sum")
eltwise_max = _eltwise("maximum", "eltwise_max")
eltwise_sub = _eltwise("subtract", "eltwise_sub")

__all__ += ["relu", "bias_add", "floordiv", "floormod", "pow", "atan2", "asin", "acos", "atan", "asinh", "acosh",
            "atanh", "absolute", "fabs", "invert", "eltwise_prod", "eltwise_sum", "eltwise_max", "eltwise_sub"]
