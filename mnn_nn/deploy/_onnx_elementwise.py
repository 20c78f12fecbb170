"""ONNX mappings of the elementwise primitives, reductions and scans (see ``ONNX_OPS`` in
:mod:`mnn_nn.deploy.onnx_export`).

Compositions follow our kernels (``native/src/ops/elementwise.cc``, ``reduce.cc``): NumPy's
``floor_divide``/``mod`` for ints and floats, integer division by 0 giving 0, Kahan's accurate
``expm1``/``log1p``, NaN-propagating ``maximum``/``minimum``.

>>> from mnn_nn.deploy.graph import trace
>>> from mnn_nn.deploy.onnx_export import graph_to_onnx
>>> import mnn_expr as F
>>> [n.op_type for n in graph_to_onnx(trace(F.silu, [F.zeros((3,))])).graph.node]
['Sigmoid', 'Mul']
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._onnx_emit import BITS, UNSIGNED_OF, Ctx, Mapping, elem_type, in_float32, is_float, is_signed


def _direct(op_type: str) -> Mapping:
    return lambda c: [c.e.emit(op_type, c.x)]


def _float_or_identity(op_type: str) -> Mapping:
    """floor, ceil, round: the ONNX op for floats, the input itself for integers."""
    return lambda c: [c.e.emit(op_type, c.x) if is_float(c.dt) else c.x[0]]


def _negative(c: Ctx) -> list:
    if c.dt == "uint8":  # Neg has no unsigned types; 0 - x wraps as our kernel does
        return [c.e.emit("Sub", [c.c(0), c.x[0]])]
    return [c.e.emit("Neg", c.x)]


def _sign(c: Ctx) -> list:
    s = c.e.emit("Sign", c.x)
    if is_float(c.dt):  # NaN stays NaN
        s = c.e.where(c.e.emit("IsNaN", c.x), c.x[0], s)
    return [s]


def _trunc(c: Ctx) -> list:
    if not is_float(c.dt):
        return [c.x[0]]
    e, x = c.e, c.x[0]
    return [e.where(e.emit("Less", [x, c.c(0)]), e.emit("Ceil", [x]), e.emit("Floor", [x]))]


@in_float32
def _rsqrt(c: Ctx) -> list:
    return [c.e.emit("Reciprocal", [c.e.emit("Sqrt", c.x)])]


@in_float32
def _cbrt(c: Ctx) -> list:
    e, x = c.e, c.x[0]
    mag = e.emit("Pow", [e.emit("Abs", [x]), c.c(1.0 / 3.0)])
    return [e.emit("Mul", [e.emit("Sign", [x]), mag])]


def _square(c: Ctx) -> list:
    return [c.e.emit("Mul", [c.x[0], c.x[0]])]


@in_float32
def _exp2(c: Ctx) -> list:
    return [c.e.emit("Pow", [c.c(2.0), c.x[0]])]


@in_float32
def _expm1(c: Ctx) -> list:
    # Kahan: u = e^x; (u - 1) * x / log(u) is accurate where u - 1 alone cancels.
    e, x = c.e, c.x[0]
    u = e.emit("Exp", [x])
    um1 = e.emit("Sub", [u, c.c(1)])
    r = e.emit("Mul", [um1, e.emit("Div", [x, e.emit("Log", [u])])])  # x / log(u) ~ 1: no overflow
    r = e.where(e.emit("IsInf", [u]), u, r)
    r = e.where(e.emit("Equal", [um1, c.c(-1)]), c.c(-1), r)
    return [e.where(e.emit("Equal", [u, c.c(1)]), x, r)]


@in_float32
def _log1p(c: Ctx) -> list:
    return [_log1p_of(c, c.x[0])]


def _log1p_of(c: Ctx, x: str) -> str:
    # Kahan: u = 1 + x; log(u) * x / (u - 1) corrects the rounding of 1 + x.
    e = c.e
    u = e.emit("Add", [x, c.c(1)])
    lu = e.emit("Log", [u])
    r = e.emit("Mul", [lu, e.emit("Div", [x, e.emit("Sub", [u, c.c(1)])])])
    r = e.where(e.emit("IsInf", [u]), lu, r)
    r = e.where(e.emit("Equal", [u, c.c(0)]), lu, r)
    return e.where(e.emit("Equal", [u, c.c(1)]), x, r)


def _scaled_log(factor: float) -> Mapping:
    return in_float32(lambda c: [c.e.emit("Mul", [c.e.emit("Log", c.x), c.c(factor)])])


def _erfc(c: Ctx) -> list:
    # erfc(|x|) = t exp(-x^2 + P(t)), t = 1 / (1 + |x| / 2) (the Chebyshev fit of Numerical Recipes,
    # relative error < 1.2e-7 everywhere), computed in float64 so x^2 is exact; erfc(-x) = 2 - erfc(x).
    e = c.e
    x = e.cast(c.x[0], c.dt, "float64")
    z = e.emit("Abs", [x])
    t = e.emit("Div", [e.const(1.0, "float64"), e.emit("Add", [e.const(1.0, "float64"),
                                                             e.emit("Mul", [z, e.const(0.5, "float64")])])])
    coef = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
            -0.82215223, 0.17087277]
    p = e.const(coef[-1], "float64")
    for a in reversed(coef[:-1]):
        p = e.emit("Add", [e.emit("Mul", [p, t]), e.const(a, "float64")])
    arg = e.emit("Sub", [p, e.emit("Mul", [z, z])])
    r = e.emit("Mul", [t, e.emit("Exp", [arg])])
    r = e.where(e.emit("Less", [x, e.const(0.0, "float64")]), e.emit("Sub", [e.const(2.0, "float64"), r]), r)
    return [e.cast(r, "float64", c.dt)]


@in_float32
def _erfinv(c: Ctx) -> list:
    # Giles' single-precision approximation (the first step of our kernel): w = -log((1 - y)(1 + y)),
    # a polynomial in w - 2.5 (w < 5) or sqrt(w) - 3, times y.  Relative error ~ 4e-7.
    e, y = c.e, c.x[0]
    one = c.c(1)
    w = e.emit("Neg", [e.emit("Log", [e.emit("Mul", [e.emit("Sub", [one, y]), e.emit("Add", [one, y])])])])

    def poly(v: str, coef: list) -> str:
        p = c.c(coef[0])
        for a in coef[1:]:
            p = e.emit("Add", [e.emit("Mul", [p, v]), c.c(a)])
        return p

    central = poly(e.emit("Sub", [w, c.c(2.5)]),
                   [2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941])
    tail = poly(e.emit("Sub", [e.emit("Sqrt", [w]), c.c(3.0)]),
                [-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                 0.00943887047, 1.00167406, 2.83297682])
    r = e.emit("Mul", [e.where(e.emit("Less", [w, c.c(5.0)]), central, tail), y])
    # y = +-1 -> +-inf (w = inf makes the tail polynomial inf already; keep the sign explicit)
    r = e.where(e.emit("Equal", [e.emit("Abs", [y]), one]), e.emit("Mul", [y, c.c(np.inf)]), r)
    return [r]


def _relu(c: Ctx) -> list:
    if is_float(c.dt):
        return [c.e.emit("Relu", c.x)]
    if c.dt == "uint8":
        return [c.x[0]]
    return [c.e.emit("Max", [c.x[0], c.c(0)])]


@in_float32
def _gelu(c: Ctx) -> list:
    e, x = c.e, c.x[0]
    if e.opset >= 20:
        return [e.emit("Gelu", [x], approximate="none")]
    phi2 = e.emit("Add", [c.c(1), e.emit("Erf", [e.emit("Mul", [x, c.c(math.sqrt(0.5))])])])
    return [e.emit("Mul", [e.emit("Mul", [x, c.c(0.5)]), phi2])]


@in_float32
def _gelu_tanh(c: Ctx) -> list:
    e, x = c.e, c.x[0]
    if e.opset >= 20:
        return [e.emit("Gelu", [x], approximate="tanh")]
    x3 = e.emit("Mul", [e.emit("Mul", [x, x]), x])
    inner = e.emit("Mul", [e.emit("Add", [x, e.emit("Mul", [x3, c.c(0.044715)])]), c.c(math.sqrt(2.0 / math.pi))])
    return [e.emit("Mul", [e.emit("Mul", [x, c.c(0.5)]), e.emit("Add", [c.c(1), e.emit("Tanh", [inner])])])]


@in_float32
def _silu(c: Ctx) -> list:
    return [c.e.emit("Mul", [c.x[0], c.e.emit("Sigmoid", c.x)])]


@in_float32
def _softplus(c: Ctx) -> list:
    # max(x, 0) + log1p(exp(-|x|)): no overflow, and the log1p keeps the small tail accurate.
    e, x = c.e, c.x[0]
    t = e.emit("Exp", [e.emit("Neg", [e.emit("Abs", [x])])])
    return [e.emit("Add", [e.emit("Relu", [x]), _log1p_of(c, t)])]


def _logical_not(c: Ctx) -> list:
    if c.dt == "bool":
        return [c.e.emit("Not", c.x)]
    return [c.e.emit("Equal", [c.x[0], c.c(0)])]


def _bitwise_not(c: Ctx) -> list:
    if c.dt == "bool":
        return [c.e.emit("Not", c.x)]
    if c.e.opset >= 18:
        return [c.e.emit("BitwiseNot", c.x)]
    top = -1 if is_signed(c.dt) else np.iinfo(c.dt).max  # ~x = -1 - x (signed), MAX - x (unsigned)
    return [c.e.emit("Sub", [c.c(top), c.x[0]])]


def _never(c: Ctx) -> str:
    return c.e.emit("Not", [c.e.emit("Equal", [c.x[0], c.x[0]])]) if c.dt != "bool" else \
        c.e.emit("And", [c.x[0], c.e.emit("Not", c.x)])


def _isnan(c: Ctx) -> list:
    return [c.e.emit("IsNaN", c.x) if is_float(c.dt) else _never(c)]


def _isinf(c: Ctx) -> list:
    return [c.e.emit("IsInf", c.x) if is_float(c.dt) else _never(c)]


def _isfinite(c: Ctx) -> list:
    if not is_float(c.dt):
        return [c.e.emit("Not", [_never(c)])]
    e = c.e
    return [e.emit("Not", [e.emit("Or", [e.emit("IsNaN", c.x), e.emit("IsInf", c.x)])])]


# binary


def _arith(op_type: str, bool_op: Optional[str] = None) -> Mapping:
    def f(c: Ctx) -> list:
        if c.dt == "bool":
            if bool_op is None:
                raise c.fail("not defined for bool inputs")
            return [c.e.emit(bool_op, c.x)]
        return [c.e.emit(op_type, c.x)]
    return f


def _minmax(op_type: str, bool_op: str) -> Mapping:
    def f(c: Ctx) -> list:
        e, (a, b) = c.e, c.x
        if c.dt == "bool":
            return [e.emit(bool_op, [a, b])]
        r = e.emit(op_type, [a, b])
        if is_float(c.dt):  # NaN propagates (NumPy's maximum / minimum)
            r = e.where(e.emit("IsNaN", [a]), a, e.where(e.emit("IsNaN", [b]), b, r))
        return [r]
    return f


def _safe_divisor(c: Ctx, b: str) -> str:
    """b with 0 (and -1 for signed ints: INT_MIN / -1 traps) replaced by 1."""
    e = c.e
    bad = e.emit("Equal", [b, c.c(0)])
    if is_signed(c.dt):
        bad = e.emit("Or", [bad, e.emit("Equal", [b, c.c(-1)])])
    return e.where(bad, c.c(1), b)


def _sign_neg(c: Ctx, v: str) -> str:
    """True where the sign bit of float v is set (-0.0 included; NaN counted as positive)."""
    e = c.e
    return e.emit("Or", [e.emit("Less", [v, c.c(0)]), e.emit("Less", [e.emit("Div", [c.c(1), v]), c.c(0)])])


def _py_mod_float(c: Ctx, a: str, b: str) -> str:
    e = c.e
    m = e.emit("Mod", [a, b], fmod=1)
    fix = e.emit("And", [e.emit("Not", [e.emit("Equal", [m, c.c(0)])]),
                         e.emit("Xor", [e.emit("Less", [b, c.c(0)]), e.emit("Less", [m, c.c(0)])])])
    m2 = e.where(fix, e.emit("Add", [m, b]), m)
    zero = e.where(_sign_neg(c, b), c.c(-0.0), c.c(0.0))  # copysign(0, b)
    return e.where(e.emit("Equal", [m, c.c(0)]), zero, m2)


@in_float32
def _mod(c: Ctx) -> list:
    e, (a, b) = c.e, c.x
    if is_float(c.dt):
        return [_py_mod_float(c, a, b)]
    # integer Mod with fmod=0 takes the divisor's sign (Python's %); x % 0 = 0 as our kernel
    return [e.emit("Mod", [a, _safe_divisor(c, b)], fmod=0)]


def _fmod(c: Ctx) -> list:
    e, (a, b) = c.e, c.x
    if is_float(c.dt):
        return [e.emit("Mod", [a, b], fmod=1)]
    return [e.emit("Mod", [a, _safe_divisor(c, b)], fmod=1)]


@in_float32
def _floor_divide(c: Ctx) -> list:
    e, (a, b) = c.e, c.x
    if not is_float(c.dt):
        bs = _safe_divisor(c, b)
        q = e.emit("Div", [e.emit("Sub", [a, e.emit("Mod", [a, bs], fmod=0)]), bs])  # exact division
        q = e.where(e.emit("Equal", [b, c.c(0)]), c.c(0), q)
        if is_signed(c.dt):
            q = e.where(e.emit("Equal", [b, c.c(-1)]), e.emit("Neg", [a]), q)
        return [q]
    # NumPy's npy_divmod: d = (a - fmod(a, b)) / b, corrected to the floor and rounded
    m = e.emit("Mod", [a, b], fmod=1)
    d = e.emit("Div", [e.emit("Sub", [a, m]), b])
    fix = e.emit("And", [e.emit("Not", [e.emit("Equal", [m, c.c(0)])]),
                         e.emit("Xor", [e.emit("Less", [b, c.c(0)]), e.emit("Less", [m, c.c(0)])])])
    d = e.where(fix, e.emit("Sub", [d, c.c(1)]), d)
    fd = e.emit("Floor", [d])
    fd = e.where(e.emit("Greater", [e.emit("Sub", [d, fd]), c.c(0.5)]), e.emit("Add", [fd, c.c(1)]), fd)
    q = e.emit("Div", [a, b])
    zero = e.where(_sign_neg(c, q), c.c(-0.0), c.c(0.0))
    fd = e.where(e.emit("Equal", [d, c.c(0)]), zero, fd)
    return [e.where(e.emit("Equal", [b, c.c(0)]), q, fd)]


def _power(c: Ctx) -> list:
    if c.dt == "bool":
        raise c.fail("not defined for bool inputs")
    return [c.e.emit("Pow", c.x)]


@in_float32
def _arctan2(c: Ctx) -> list:
    e, (y, x) = c.e, c.x
    t = e.emit("Atan", [e.emit("Div", [y, x])])
    pi_y = e.where(_sign_neg(c, y), c.c(-math.pi), c.c(math.pi))
    x_neg = _sign_neg(c, x)
    r = e.where(x_neg, e.emit("Add", [t, pi_y]), t)
    # both zero: y/x is NaN; atan2(+-0, +0) = +-0, atan2(+-0, -0) = +-pi
    both0 = e.emit("And", [e.emit("Equal", [y, c.c(0)]), e.emit("Equal", [x, c.c(0)])])
    r = e.where(both0, e.where(x_neg, pi_y, y), r)
    # both infinite: inf/inf is NaN; the angle is +-pi/4 or +-3pi/4
    both_inf = e.emit("And", [e.emit("IsInf", [y]), e.emit("IsInf", [x])])
    quarter = e.emit("Mul", [pi_y, e.where(x_neg, c.c(0.75), c.c(0.25))])
    return [e.where(both_inf, quarter, r)]


@in_float32
def _hypot(c: Ctx) -> list:
    e = c.e
    a, b = (e.emit("Abs", [v]) for v in c.x)
    hi, lo = e.emit("Max", [a, b]), e.emit("Min", [a, b])
    r = e.emit("Div", [lo, hi])
    h = e.emit("Mul", [hi, e.emit("Sqrt", [e.emit("Add", [c.c(1), e.emit("Mul", [r, r])])])])
    h = e.where(e.emit("Equal", [hi, c.c(0)]), c.c(0), h)
    nan = e.emit("Or", [e.emit("IsNaN", [a]), e.emit("IsNaN", [b])])
    h = e.where(nan, e.emit("Add", [a, b]), h)
    inf = e.emit("Or", [e.emit("IsInf", [a]), e.emit("IsInf", [b])])
    return [e.where(inf, c.c(np.inf), h)]


def _copysign(c: Ctx) -> list:
    e, (a, b) = c.e, c.x
    m = e.emit("Abs", [a])
    return [e.where(_sign_neg(c, b), e.emit("Neg", [m]), m)]


@in_float32
def _squared_difference(c: Ctx) -> list:
    d = c.e.emit("Sub", c.x)
    return [c.e.emit("Mul", [d, d])]


def _compare(op_type: str, negate: bool = False) -> Mapping:
    def f(c: Ctx) -> list:
        x = c.x
        if c.dt == "bool" and op_type != "Equal":  # the ordering ops have no bool types
            x = [c.e.cast(v, "bool", "int32") for v in x]
        r = c.e.emit(op_type, x)
        return [c.e.emit("Not", [r]) if negate else r]
    return f


def _logical(op_type: str) -> Mapping:
    return lambda c: [c.e.emit(op_type, [c.e.cast(v, val.dtype, "bool") for v, val in zip(c.x, c.vin)])]


def _bitwise(op_type: str, bool_op: str) -> Mapping:
    def f(c: Ctx) -> list:
        if c.dt == "bool":
            return [c.e.emit(bool_op, c.x)]
        if c.e.opset < 18:
            raise c.fail(f"integer {op_type} needs opset >= 18 (export with opset=18)")
        return [c.e.emit(op_type, c.x)]
    return f


def _shift(left: bool) -> Mapping:
    def f(c: Ctx) -> list:
        # BitShift exists for unsigned types only: shift the bit pattern as unsigned (arithmetic right
        # shift of a negative value: ~((~a) >> b)); shifts outside [0, bits) give 0 (or -1).
        e, (a, b) = c.e, c.x
        dt, udt, bits = c.dt, UNSIGNED_OF[c.dt], BITS[c.dt]
        out_range = e.emit("Or", [e.emit("Less", [b, c.c(0)]), e.emit("GreaterOrEqual", [b, c.c(bits)])])
        bs = e.cast(e.where(out_range, c.c(0), b), dt, udt)
        if left:
            r = e.cast(e.emit("BitShift", [e.cast(a, dt, udt), bs], direction="LEFT"), udt, dt)
            return [e.where(out_range, c.c(0), r)]
        if not is_signed(dt):
            r = e.emit("BitShift", [a, bs], direction="RIGHT")
            return [e.where(out_range, c.c(0), r)]
        neg = e.emit("Less", [a, c.c(0)])
        pos = e.where(neg, e.emit("Sub", [c.c(-1), a]), a)
        s = e.cast(e.emit("BitShift", [e.cast(pos, dt, udt), bs], direction="RIGHT"), udt, dt)
        r = e.where(neg, e.emit("Sub", [c.c(-1), s]), s)
        return [e.where(out_range, e.where(neg, c.c(-1), c.c(0)), r)]
    return f


def _where(c: Ctx) -> list:
    return [c.e.emit("Where", c.x)]


def _cast(c: Ctx) -> list:
    return [c.e.emit("Cast", c.x, to=elem_type(c.vout[0].dtype))]


# --------------------------------------------------------------------------- reductions and scans


def _reduction(op_type: str) -> Mapping:
    def f(c: Ctx) -> list:
        e, out_dt = c.e, c.vout[0].dtype
        x = e.cast(c.x[0], c.dt, out_dt)  # sum/prod of ints -> int64, mean of ints -> float32
        if out_dt == "bool":  # max/min of bools
            x = e.cast(x, "bool", "int32")
        r = e.reduce(op_type, x, c.attrs["axes"], c.attrs["keepdims"])
        return [e.cast(r, "int32", "bool") if out_dt == "bool" else r]
    return f


def _any_all(op_type: str) -> Mapping:
    def f(c: Ctx) -> list:
        e = c.e
        x = e.cast(e.cast(c.x[0], c.dt, "bool"), "bool", "int32")
        r = e.reduce(op_type, x, c.attrs["axes"], c.attrs["keepdims"])
        return [e.cast(r, "int32", "bool")]
    return f


def _arg(op_type: str) -> Mapping:
    def f(c: Ctx) -> list:
        x = c.e.cast(c.x[0], c.dt, "int32") if c.dt == "bool" else c.x[0]
        return [c.e.emit(op_type, [x], axis=int(c.attrs["axis"]), keepdims=int(bool(c.attrs["keepdims"])))]
    return f


def _cumsum(c: Ctx) -> list:
    e = c.e
    x = e.cast(c.x[0], c.dt, c.vout[0].dtype)
    return [e.emit("CumSum", [x, e.const(int(c.attrs["axis"]))], exclusive=int(bool(c.attrs["exclusive"])),
                   reverse=int(bool(c.attrs["reverse"])))]


def _cumprod(c: Ctx) -> list:
    # No ONNX CumProd: y[..., i, ...] = prod over j of where(mask[i, j], x[..., j, ...], 1) with a
    # triangular mask built from Range (so a dynamic axis length works too).
    e, out_dt = c.e, c.vout[0].dtype
    x = e.cast(c.x[0], c.dt, out_dt)
    r = len(c.shape)
    a = int(c.attrs["axis"]) % r
    n = e.squeeze(e.shape_of(c.x[0], c.shape, a, a + 1), [0])
    idx = e.emit("Range", [e.const(0), n, e.const(1)])
    i, j = e.unsqueeze(idx, [1]), e.unsqueeze(idx, [0])
    rev, exc = bool(c.attrs["reverse"]), bool(c.attrs["exclusive"])
    cmp = {(False, False): "LessOrEqual", (False, True): "Less", (True, False): "GreaterOrEqual",
           (True, True): "Greater"}[(rev, exc)]
    mask = e.emit(cmp, [j, i])  # [n (i), n (j)]
    if r - a - 1:
        mask = e.unsqueeze(mask, list(range(2, 2 + r - a - 1)))
    terms = e.where(mask, e.unsqueeze(x, [a]), e.const(1, out_dt))
    return [e.reduce("ReduceProd", terms, [a + 1], False)]
