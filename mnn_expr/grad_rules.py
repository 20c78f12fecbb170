"""Gradient rules: ONE table, keyed by primitive name (``native/include/mnn/ops.def``).

``RULES[name](ct, inputs, outputs, attrs, needs) -> list`` is the vector-Jacobian product
of primitive ``name``: given the cotangent ``ct`` of one output (``outputs[k]`` is that
output, the other entries are None for multi-output ops), it returns one cotangent per input,
or None for an input no gradient flows into (indices, a ``where`` condition, a cast from an
integer).  ``needs[k]`` says whether input ``k``'s cotangent is wanted at all; a rule may
skip the work (and return None) for the others, as the costly ones (matmul, convolution) do.
Rules are written with ops, so the gradients are graphs themselves and can be differentiated
again.  Composites (softmax, var, conv front ends, ...) are built from primitives and need no
rule.

``NON_DIFFERENTIABLE[name]`` says why a primitive has no gradient (integer/bool outputs,
random draws); every primitive is in exactly one of the two tables.

>>> import mnn_expr as F
>>> sorted(set(RULES) & set(NON_DIFFERENTIABLE))
[]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from . import _native
from ._core import apply, apply1
from ._native import Var
from .creation import zeros
from .executor import is_tracing_dynamic

Rule = Callable[[Var, list, list, dict, list], list]
RULES: dict[str, Rule] = {}

NON_DIFFERENTIABLE: dict[str, str] = {
    **{n: "its output is bool" for n in (
        "logical_not", "isnan", "isinf", "isfinite", "equal", "not_equal", "less", "less_equal", "greater",
        "greater_equal", "logical_and", "logical_or", "logical_xor", "reduce_any", "reduce_all")},
    **{n: "it is a bitwise (integer/bool) op" for n in (
        "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")},
    "argmax": "its output is an integer index",
    "argmin": "its output is an integer index",
    "random_uniform": "it is a random draw (no inputs to differentiate)",
    "random_normal": "it is a random draw (no inputs to differentiate)",
}

# Outputs of differentiable primitives that carry no gradient (their integer indices).
NON_DIFFERENTIABLE_OUTPUTS: dict[str, tuple] = {"sort": (1,), "topk": (1,)}


def _rule(*names: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn
    return deco


# ---- helpers --------------------------------------------------------------------------

def _b(op: str, a: Any, b: Any) -> Var:
    return _native.binary(op, a, b)


def _u(op: str, a: Var) -> Var:
    return _native.unary(op, a)


def _where(c: Any, a: Any, b: Any) -> Var:
    return _native.where(c, a, b)


def _reshape(x: Var, shape: Any) -> Var:
    shape = [int(d) for d in shape]
    return x if tuple(shape) == x.shape else apply1("reshape", [x], shape=shape)


def _transpose(x: Var, perm: Any) -> Var:
    perm = [int(p) for p in perm]
    return x if perm == list(range(x.ndim)) else apply1("transpose", [x], perm=perm)


def _sum(x: Var, axes: Any, keepdims: bool = False) -> Var:
    return apply1("reduce_sum", [x], axes=[int(a) for a in axes], keepdims=keepdims)


def _zeros(shape: Any, dtype: Any, like: Optional[Var] = None) -> Var:
    """Zeros of ``shape``; shaped after ``like`` (same shape) when tracing for dynamic dims."""
    if like is not None and is_tracing_dynamic() and tuple(like.shape) == tuple(shape):
        return apply1("broadcast_like", [zeros((), dtype), like])
    return zeros(tuple(shape), dtype)


def _const(arr: np.ndarray) -> Var:
    return _native.from_numpy(np.ascontiguousarray(arr), copy=True)


def unbroadcast(g: Var, shape: Any) -> Var:
    """Sums ``g`` over the axes that broadcasting added or stretched, giving ``shape``.

    >>> import mnn_expr as F
    >>> unbroadcast(F.ones((2, 3)), (1, 3)).tolist()
    [[2.0, 2.0, 2.0]]
    """
    shape = tuple(int(d) for d in shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1]
    if axes:
        g = _sum(g, axes, keepdims=True)
    return _reshape(g, shape)


def _bcast(ct: Var, shape: Any, like: Optional[Var] = None) -> Var:
    """``ct`` broadcast to ``shape``; to ``like``'s shape at run time (``like`` has ``shape``) when
    tracing for dynamic dims, so the graph does not bake in the traced size."""
    shape = [int(d) for d in shape]
    if tuple(shape) == ct.shape:
        return ct
    if like is not None and is_tracing_dynamic() and tuple(like.shape) == tuple(shape):
        return apply1("broadcast_like", [ct, like])
    return apply1("broadcast_to", [ct], shape=shape)


def _scatter_add_flat(ct: Var, idmap: np.ndarray, n: int, shape: Any) -> Var:
    """Adjoint of a selection: ``idmap`` (ct's shape) holds, per element of ct, the flat
    input index it was copied from (-1: not from the input); returns the summed input grad."""
    flat_ids = idmap.reshape(-1)
    sel = np.nonzero(flat_ids >= 0)[0]
    if sel.size == 0:
        return _zeros(shape, ct.dtype)
    g = _reshape(ct, [-1])
    if sel.size != flat_ids.size:
        g = apply1("gather", [g, _const(sel.astype(np.int64))], axis=0)
    idx = _const(flat_ids[sel].astype(np.int64).reshape(-1, 1))
    out = apply1("scatter_nd", [_zeros([n], ct.dtype), idx, g], reduction="add")
    return _reshape(out, shape)


def _index_map(op: str, x: Var, attrs: dict) -> np.ndarray:
    """Runs movement op ``op`` on the flat indices of ``x`` to learn where each output element
    comes from (-1: a constant or unwritten element)."""
    ids = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    a = dict(attrs)
    if op == "pad":
        a["value"] = -1.0
    out = apply1(op, [_const(ids)], **a)
    return np.asarray(out.read())


# ---- elementwise unary: d/dx written with x (input) and y (output) ------------------------

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_S2PI = math.sqrt(2.0 / math.pi)


def _unary(name: str, dydx: Callable[[Var, Var], Any]) -> None:
    def vjp(ct: Var, inputs: list, outputs: list, attrs: dict, needs: list) -> list:
        return [_b("multiply", ct, dydx(inputs[0], outputs[0]))]
    RULES[name] = vjp


def _sq(v: Var) -> Var:
    return _b("multiply", v, v)


def _zero_rule(ct: Var, inputs: list, outputs: list, attrs: dict, needs: list) -> list:
    return [_zeros(inp.shape, inp.dtype) for inp in inputs]


# piecewise-constant: derivative 0 wherever it exists
_rule("sign", "floor", "ceil", "round", "trunc", "floor_divide")(_zero_rule)


@_rule("negative")
def _neg(ct, inputs, outputs, attrs, needs):  # d(-x) = -1
    return [_u("negative", ct)]


@_rule("relu")
def _relu(ct, inputs, outputs, attrs, needs):  # d relu = [x > 0]
    return [_where(_b("greater", inputs[0], 0.0), ct, 0.0)]


_unary("abs", lambda x, y: _u("sign", x))                                    # sign(x)
_unary("sqrt", lambda x, y: _b("divide", 0.5, y))                           # 1 / (2 sqrt x)
_unary("rsqrt", lambda x, y: _b("multiply", _b("multiply", _sq(y), y), -0.5))  # -x^-3/2 / 2
_unary("cbrt", lambda x, y: _b("divide", 1.0 / 3.0, _sq(y)))                # 1 / (3 x^2/3)
_unary("square", lambda x, y: _b("multiply", x, 2.0))                       # 2x
_unary("reciprocal", lambda x, y: _u("negative", _sq(y)))                   # -1/x^2
_unary("exp", lambda x, y: y)                                               # e^x
_unary("exp2", lambda x, y: _b("multiply", y, _LN2))                        # 2^x ln 2
_unary("expm1", lambda x, y: _b("add", y, 1.0))                             # e^x
_unary("log", lambda x, y: _u("reciprocal", x))                             # 1/x
_unary("log2", lambda x, y: _b("divide", 1.0 / _LN2, x))                    # 1/(x ln 2)
_unary("log10", lambda x, y: _b("divide", 1.0 / _LN10, x))                  # 1/(x ln 10)
_unary("log1p", lambda x, y: _u("reciprocal", _b("add", x, 1.0)))           # 1/(1+x)
_unary("sin", lambda x, y: _u("cos", x))                                    # cos x
_unary("cos", lambda x, y: _u("negative", _u("sin", x)))                    # -sin x
_unary("tan", lambda x, y: _b("add", _sq(y), 1.0))                          # 1 + tan^2 x
_unary("arcsin", lambda x, y: _u("rsqrt", _b("subtract", 1.0, _sq(x))))     # 1/sqrt(1-x^2)
_unary("arccos", lambda x, y: _u("negative", _u("rsqrt", _b("subtract", 1.0, _sq(x)))))  # -1/sqrt(1-x^2)
_unary("arctan", lambda x, y: _u("reciprocal", _b("add", _sq(x), 1.0)))     # 1/(1+x^2)
_unary("sinh", lambda x, y: _u("cosh", x))                                  # cosh x
_unary("cosh", lambda x, y: _u("sinh", x))                                  # sinh x
_unary("tanh", lambda x, y: _b("subtract", 1.0, _sq(y)))                    # 1 - tanh^2 x
_unary("arcsinh", lambda x, y: _u("rsqrt", _b("add", _sq(x), 1.0)))         # 1/sqrt(x^2+1)
_unary("arccosh", lambda x, y: _u("rsqrt", _b("subtract", _sq(x), 1.0)))    # 1/sqrt(x^2-1)
_unary("arctanh", lambda x, y: _u("reciprocal", _b("subtract", 1.0, _sq(x))))  # 1/(1-x^2)
_unary("erf", lambda x, y: _b("multiply", _u("exp", _u("negative", _sq(x))), _TWO_OVER_SQRT_PI))  # 2/sqrt(pi) e^-x^2
_unary("erfc", lambda x, y: _b("multiply", _u("exp", _u("negative", _sq(x))), -_TWO_OVER_SQRT_PI))  # -2/sqrt(pi) e^-x^2
_unary("erfinv", lambda x, y: _b("multiply", _u("exp", _sq(y)), math.sqrt(math.pi) / 2.0))  # sqrt(pi)/2 e^(y^2)
_unary("sigmoid", lambda x, y: _b("multiply", y, _b("subtract", 1.0, y)))   # s (1 - s)
def _gelu_d(x: Var, y: Var) -> Var:  # Phi(x) + x phi(x)
    cdf = _b("multiply", _b("add", _u("erf", _b("multiply", x, 1.0 / math.sqrt(2.0))), 1.0), 0.5)
    pdf = _b("multiply", _u("exp", _b("multiply", _sq(x), -0.5)), _INV_SQRT_2PI)
    return _b("add", cdf, _b("multiply", x, pdf))


_unary("gelu", _gelu_d)


def _gelu_tanh_d(x: Var, y: Var) -> Var:
    # 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(sqrt(2/pi)(x + 0.044715 x^3))
    x2 = _sq(x)
    t = _u("tanh", _b("multiply", _b("add", x, _b("multiply", _b("multiply", x2, x), 0.044715)), _S2PI))
    du = _b("multiply", _b("add", _b("multiply", x2, 3 * 0.044715), 1.0), _S2PI)
    return _b("add", _b("multiply", _b("add", t, 1.0), 0.5),
              _b("multiply", _b("multiply", _b("multiply", x, 0.5), _b("subtract", 1.0, _sq(t))), du))


_unary("gelu_tanh", _gelu_tanh_d)


def _silu_d(x: Var, y: Var) -> Var:  # s (1 + x (1 - s)), s = sigmoid x
    s = _u("sigmoid", x)
    return _b("multiply", s, _b("add", _b("multiply", x, _b("subtract", 1.0, s)), 1.0))


_unary("silu", _silu_d)
_unary("softplus", lambda x, y: _u("sigmoid", x))                           # sigmoid x
_unary("softsign", lambda x, y: _u("reciprocal", _sq(_b("add", _u("abs", x), 1.0))))  # 1/(1+|x|)^2


# ---- elementwise binary (cotangents summed back over broadcast axes) ------------------------

def _binary(name: str, fn: Callable[[Var, Var, Var, Var], tuple]) -> None:
    def vjp(ct: Var, inputs: list, outputs: list, attrs: dict, needs: list) -> list:
        a, b = inputs
        ga, gb = fn(ct, a, b, outputs[0])
        return [None if ga is None else unbroadcast(_bcast(ga, ct.shape, ct), a.shape),
                None if gb is None else unbroadcast(_bcast(gb, ct.shape, ct), b.shape)]
    RULES[name] = vjp


def _pow_grads(ct: Var, a: Var, b: Var, y: Var) -> tuple:
    # d/da = b a^(b-1) (0 where b == 0); d/db = a^b ln a (0 where a == 0 and b >= 0), as PyTorch
    da = _where(_b("equal", b, 0.0), 0.0, _b("multiply", b, _b("power", a, _b("subtract", b, 1.0))))
    db = _where(_b("logical_and", _b("equal", a, 0.0), _b("greater_equal", b, 0.0)), 0.0,
                _b("multiply", y, _u("log", a)))
    return _b("multiply", ct, da), _b("multiply", ct, db)


def _max_grads(ct: Var, a: Var, b: Var, y: Var, op: str) -> tuple:
    # the larger (smaller) input gets ct; ties split it in halves (PyTorch)
    half = _b("multiply", ct, 0.5)
    win = _b(op, a, b)
    tie = _b("equal", a, b)
    return (_where(tie, half, _where(win, ct, 0.0)),
            _where(tie, half, _where(win, 0.0, ct)))


def _squared_difference(ct: Var, a: Var, b: Var, y: Var) -> tuple:  # d/da = 2(a-b) = -d/db
    g = _b("multiply", ct, _b("multiply", _b("subtract", a, b), 2.0))
    return g, _u("negative", g)


def _atan2(ct: Var, a: Var, b: Var, y: Var) -> tuple:  # d/da = b/(a^2+b^2), d/db = -a/(a^2+b^2)
    r = _b("divide", ct, _b("add", _sq(a), _sq(b)))
    return _b("multiply", r, b), _u("negative", _b("multiply", r, a))


_binary("add", lambda ct, a, b, y: (ct, ct))                                           # 1, 1
_binary("subtract", lambda ct, a, b, y: (ct, _u("negative", ct)))                      # 1, -1
_binary("multiply", lambda ct, a, b, y: (_b("multiply", ct, b), _b("multiply", ct, a)))  # b, a
_binary("divide", lambda ct, a, b, y: (_b("divide", ct, b),                             # 1/b, -a/b^2
                                        _u("negative", _b("divide", _b("multiply", ct, y), b))))
_binary("power", _pow_grads)
_binary("maximum", lambda ct, a, b, y: _max_grads(ct, a, b, y, "greater"))
_binary("minimum", lambda ct, a, b, y: _max_grads(ct, a, b, y, "less"))
_binary("arctan2", _atan2)
_binary("hypot", lambda ct, a, b, y: (_b("multiply", ct, _b("divide", a, y)),            # a/h, b/h
                                       _b("multiply", ct, _b("divide", b, y))))
_binary("copysign", lambda ct, a, b, y: (                                               # y/a (0 at a == 0), 0
    _b("multiply", ct, _where(_b("equal", a, 0.0), 0.0, _b("divide", y, a))), _zeros(b.shape, b.dtype)))
_binary("squared_difference", _squared_difference)
_binary("mod", lambda ct, a, b, y: (ct, _b("multiply", _u("negative", ct),              # 1, -floor(a/b)
                                             _u("floor", _b("divide", a, b)))))
_binary("fmod", lambda ct, a, b, y: (ct, _b("multiply", _u("negative", ct),             # 1, -trunc(a/b)
                                              _u("trunc", _b("divide", a, b)))))


@_rule("where")
def _where_rule(ct, inputs, outputs, attrs, needs):  # ct to the chosen branch; none to the condition
    c, a, b = inputs
    return [None, unbroadcast(_where(c, ct, 0.0), a.shape), unbroadcast(_where(c, 0.0, ct), b.shape)]


@_rule("cast")
def _cast(ct, inputs, outputs, attrs, needs):  # float -> float: identity (in the input's dtype); else none
    x = inputs[0]
    if not (x.dtype.is_floating and outputs[0].dtype.is_floating):
        return [None]
    return [_native.cast(ct, x.dtype.name)]


# ---- reductions and scans -----------------------------------------------------------------

def _reduced_axes(x: Var, attrs: dict) -> list:
    axes = list(attrs.get("axes", []))
    return list(range(x.ndim)) if not axes else sorted(a % x.ndim for a in axes)


def _keep(ct: Var, x: Var, attrs: dict) -> Var:
    """``ct`` reshaped as if the reduction had kept its axes."""
    axes = _reduced_axes(x, attrs)
    return _reshape(ct, [1 if i in axes else d for i, d in enumerate(x.shape)])


@_rule("reduce_sum")
def _reduce_sum(ct, inputs, outputs, attrs, needs):  # 1 for every summed element
    x = inputs[0]
    return [_bcast(_keep(ct, x, attrs), x.shape, x)]


@_rule("reduce_mean")
def _reduce_mean(ct, inputs, outputs, attrs, needs):  # 1/n
    x = inputs[0]
    if is_tracing_dynamic():  # n counted when the graph runs: the sum of ones over the reduced axes
        ones = apply1("broadcast_like", [_native.cast(_const(np.ones(())), ct.dtype.name), x])
        n = _sum(ones, _reduced_axes(x, attrs), keepdims=True)
        return [_bcast(_b("divide", _keep(ct, x, attrs), n), x.shape, x)]
    n = int(np.prod([x.shape[a] for a in _reduced_axes(x, attrs)], dtype=np.int64))
    return [_bcast(_b("multiply", _keep(ct, x, attrs), 1.0 / max(n, 1)), x.shape)]


@_rule("reduce_max", "reduce_min")
def _reduce_extreme(ct, inputs, outputs, attrs, needs):  # ct split evenly among the elements equal to the extreme
    x = inputs[0]
    yk = _keep(outputs[0], x, attrs)
    mask = _native.cast(_b("equal", x, yk), x.dtype.name)
    count = _sum(mask, _reduced_axes(x, attrs), keepdims=True)
    return [_b("multiply", mask, _b("divide", _keep(ct, x, attrs), count))]


@_rule("reduce_prod")
def _reduce_prod(ct, inputs, outputs, attrs, needs):  # product of the other elements (exact at zeros)
    x = inputs[0]
    axes = _reduced_axes(x, attrs)
    rest = [i for i in range(x.ndim) if i not in axes]
    perm = rest + axes
    xt = _transpose(x, perm)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    flat = _reshape(xt, [x.shape[i] for i in rest] + [n])
    if n == 0:
        return [_zeros(x.shape, x.dtype)]
    ax = len(rest)
    before = apply1("cumprod", [flat], axis=ax, exclusive=True, reverse=False)
    after = apply1("cumprod", [flat], axis=ax, exclusive=True, reverse=True)
    others = _reshape(_b("multiply", before, after), xt.shape)
    inv = list(np.argsort(perm))
    g = _b("multiply", _transpose(others, inv), _keep(ct, x, attrs))
    return [g]


@_rule("cumsum")
def _cumsum(ct, inputs, outputs, attrs, needs):  # the adjoint scan runs the other way
    return [apply1("cumsum", [ct], axis=attrs["axis"], exclusive=attrs["exclusive"],
                   reverse=not attrs["reverse"])]


def _flip(x: Var, axis: int) -> Var:
    return apply1("flip", [x], axes=[axis])


def _cumprod_inclusive_grad(ct: Var, x: Var, axis: int) -> Var:
    # dx_j = sum_{i>=j} ct_i prod_{k<=i, k!=j} x_k, in O(n) and exact at zeros (as PyTorch):
    # before the first zero of a row it is revcumsum(ct y)_j / x_j; at the first zero it is
    # revcumsum(ct y')_j with that zero replaced by 1 in y'; after it, every term holds the zero.
    def scan(op: str, v: Var, exclusive: bool, reverse: bool) -> Var:
        return apply1(op, [v], axis=axis, exclusive=exclusive, reverse=reverse)

    dt = x.dtype.name
    z = _native.cast(_b("equal", x, 0.0), dt)
    zeros_before = scan("cumsum", z, True, False)
    before = _b("logical_and", _b("equal", zeros_before, 0.0), _b("equal", z, 0.0))
    first = _b("logical_and", _b("equal", zeros_before, 0.0), _b("equal", z, 1.0))
    y = scan("cumprod", x, False, False)
    g_before = _b("divide", scan("cumsum", _b("multiply", ct, y), False, True), _where(before, x, 1.0))
    y1 = scan("cumprod", _where(first, 1.0, x), False, False)
    g_first = scan("cumsum", _b("multiply", ct, y1), False, True)
    return _where(before, g_before, _where(first, g_first, 0.0))


@_rule("cumprod")
def _cumprod(ct, inputs, outputs, attrs, needs):  # see _cumprod_inclusive_grad; exclusive/reverse: shift/flip
    x = inputs[0]
    axis = attrs["axis"] % x.ndim
    if x.shape[axis] == 0:
        return [_zeros(x.shape, x.dtype)]
    if attrs["reverse"]:
        x, ct = _flip(x, axis), _flip(ct, axis)
    if attrs["exclusive"]:  # y_i = inclusive_{i-1}: inclusive's ct is ct shifted back by one
        n = x.shape[axis]
        pads = [0] * (2 * x.ndim)
        pads[2 * axis + 1] = 1
        shifted = apply1("slice", [ct], begins=[0 if i != axis else 1 for i in range(x.ndim)],
                         ends=[x.shape[i] if i != axis else n for i in range(x.ndim)], steps=[1] * x.ndim)
        ct = apply1("pad", [shifted], pads=pads, mode="constant", value=0.0)
    g = _cumprod_inclusive_grad(ct, x, axis)
    return [_flip(g, axis) if attrs["reverse"] else g]


# ---- movement -----------------------------------------------------------------------------

@_rule("reshape")
def _reshape_rule(ct, inputs, outputs, attrs, needs):  # identity on the elements
    return [_reshape(ct, inputs[0].shape)]


@_rule("transpose")
def _transpose_rule(ct, inputs, outputs, attrs, needs):  # inverse permutation
    perm = [p % inputs[0].ndim for p in attrs["perm"]]
    return [_transpose(ct, list(np.argsort(perm)))]


@_rule("broadcast_to")
def _broadcast_rule(ct, inputs, outputs, attrs, needs):  # sum over broadcast axes
    return [unbroadcast(ct, inputs[0].shape)]


@_rule("broadcast_like")
def _broadcast_like_rule(ct, inputs, outputs, attrs, needs):  # as broadcast_to; `like` only gives the shape
    return [unbroadcast(ct, inputs[0].shape), None]


@_rule("concat")
def _concat_rule(ct, inputs, outputs, attrs, needs):  # each input gets its slice
    axis = attrs["axis"] % ct.ndim
    out, pos = [], 0
    for x in inputs:
        n = x.shape[axis]
        out.append(apply1("slice", [ct], begins=[pos if i == axis else 0 for i in range(ct.ndim)],
                          ends=[pos + n if i == axis else ct.shape[i] for i in range(ct.ndim)], steps=[1] * ct.ndim))
        pos += n
    return out


@_rule("flip")
def _flip_rule(ct, inputs, outputs, attrs, needs):  # flip back
    return [apply1("flip", [ct], axes=list(attrs["axes"]))]


@_rule("tile")
def _tile_rule(ct, inputs, outputs, attrs, needs):  # sum over the repeats
    x = inputs[0]
    reps = list(attrs["reps"])
    nd = max(len(reps), x.ndim)
    reps = [1] * (nd - len(reps)) + reps
    xs = [1] * (nd - x.ndim) + list(x.shape)
    g = _reshape(ct, [v for r, d in zip(reps, xs) for v in (r, d)])
    g = _sum(g, [2 * i for i in range(nd)])
    return [_reshape(g, x.shape)]


@_rule("pad")
def _pad_rule(ct, inputs, outputs, attrs, needs):  # constant: the interior slice; mirroring modes: summed sources
    x = inputs[0]
    p = list(attrs["pads"])
    if attrs.get("mode", "constant") == "constant":
        return [apply1("slice", [ct], begins=[p[2 * i] for i in range(x.ndim)],
                       ends=[p[2 * i] + x.shape[i] for i in range(x.ndim)], steps=[1] * x.ndim)]
    return [_scatter_add_flat(ct, _index_map("pad", x, attrs), x.size, x.shape)]


@_rule("slice")
def _slice_rule(ct, inputs, outputs, attrs, needs):  # selected elements get their ct, the rest 0
    x = inputs[0]
    begins, ends, steps = list(attrs["begins"]), list(attrs["ends"]), list(attrs.get("steps") or [])
    if all(st == 1 for st in steps):  # contiguous: zero-pad ct back (Python's clamping = the op's)
        pads = []
        for i, n in enumerate(x.shape):
            b, e = slice(begins[i], ends[i], 1).indices(n)[:2] if i < len(begins) else (0, n)
            ln = max(0, e - b)
            pads += [b if ln else 0, n - b - ln if ln else n]
        return [apply1("pad", [ct], pads=pads, mode="constant", value=0.0)]
    return [_scatter_add_flat(ct, _index_map("slice", x, attrs), x.size, x.shape)]


@_rule("raster")
def _raster_rule(ct, inputs, outputs, attrs, needs):  # each element of the output came from one input element (or none)
    # Ids are written through the same regions (1-based, input k offset by the earlier inputs'
    # sizes; 0 = unwritten), so "later regions win" and self-copies are followed exactly.
    offs = np.cumsum([0] + [x.size for x in inputs])
    srcs = [_const(np.arange(offs[k] + 1, offs[k + 1] + 1, dtype=np.int64).reshape(x.shape))
            for k, x in enumerate(inputs)]
    ids = np.asarray(apply1("raster", srcs, regions=list(attrs["regions"]), shape=list(attrs["shape"])).read()) - 1
    out = []
    for k, x in enumerate(inputs):
        if not x.dtype.is_floating:
            out.append(None)
            continue
        local = np.where((ids >= offs[k]) & (ids < offs[k + 1]), ids - offs[k], -1)
        out.append(_scatter_add_flat(ct, local, x.size, x.shape))
    return out


# ---- indexing ------------------------------------------------------------------------------

@_rule("gather")
def _gather_rule(ct, inputs, outputs, attrs, needs):  # scatter-add ct to the gathered rows
    x, idx = inputs
    axis = attrs.get("axis", 0) % max(x.ndim, 1)
    k = idx.ndim
    # ct: x.shape[:axis] + idx.shape + x.shape[axis+1:]; move the index dims first
    perm_ct = list(range(axis, axis + k)) + list(range(axis)) + list(range(axis + k, ct.ndim))
    ctt = _transpose(ct, perm_ct)
    perm_x = [axis] + [i for i in range(x.ndim) if i != axis]
    xt_shape = [x.shape[i] for i in perm_x]
    i2 = _reshape(idx, list(idx.shape) + [1])
    g = apply1("scatter_nd", [_zeros(xt_shape, ct.dtype, x), i2, ctt], reduction="add")
    return [_transpose(g, list(np.argsort(perm_x))), None]


@_rule("gather_nd")
def _gather_nd_rule(ct, inputs, outputs, attrs, needs):  # scatter-add
    x, idx = inputs
    return [apply1("scatter_nd", [_zeros(x.shape, ct.dtype, x), idx, ct], reduction="add"), None]


@_rule("take_along_axis")
def _take_along_rule(ct, inputs, outputs, attrs, needs):  # put-add along the axis (then sum over broadcast dims)
    x, idx = inputs
    axis = attrs["axis"] % x.ndim
    shape = [x.shape[i] if i == axis else ct.shape[i] for i in range(x.ndim)]
    ib = _bcast(idx, [idx.shape[i] if i == axis else ct.shape[i] for i in range(x.ndim)], ct)
    g = apply1("put_along_axis", [_zeros(shape, ct.dtype, x), ib, ct], axis=axis, reduction="add")
    return [unbroadcast(g, x.shape), None]


def _winner_ids(data_shape: tuple, n_updates_shape: tuple, place: Callable[[Var, Var], Var]) -> tuple:
    """For reduction 'none' scatters: (id of the update that wins each position (-1: none), update ids)."""
    ids = _const(np.arange(int(np.prod(n_updates_shape, dtype=np.int64)), dtype=np.int64).reshape(n_updates_shape))
    return place(_const(np.full(data_shape, -1, dtype=np.int64)), ids), ids


def _scatter_extreme(ct: Var, data: Var, upd: Var, out: Var, place: Callable, pick: Callable) -> list:
    """max/min scatters: ct is split evenly among data and the updates equal to the result (PyTorch)."""
    dt = ct.dtype.name
    md = _native.cast(_b("equal", data, out), dt)
    mu = _native.cast(_b("equal", upd, pick(out)), dt)
    count = _b("add", md, place(_zeros(data.shape, ct.dtype), mu, "add"))
    share = _b("divide", ct, count)
    return [_b("multiply", share, md), None, unbroadcast(_b("multiply", pick(share), mu), upd.shape)]


@_rule("scatter_nd")
def _scatter_nd_rule(ct, inputs, outputs, attrs, needs):  # none: ct to data where unwritten, to each winning update
    data, idx, upd = inputs
    red = attrs.get("reduction", "none")
    if red == "add":
        gu = apply1("gather_nd", [ct, idx])
        return [ct, None, unbroadcast(gu, upd.shape)]
    if red in ("max", "min"):
        return _scatter_extreme(ct, data, upd, outputs[0],
                                lambda d, u, r: apply1("scatter_nd", [d, idx, u], reduction=r),
                                lambda v: apply1("gather_nd", [v, idx]))
    if red != "none":
        raise ValueError(f"grad: no gradient for scatter_nd with reduction '{red}' (only none, add, max, min)")
    ushape = tuple(idx.shape[:-1]) + tuple(data.shape[idx.shape[-1]:])
    win, ids = _winner_ids(data.shape, ushape,
                           lambda d, u: apply1("scatter_nd", [d, idx, u], reduction="none"))
    gd = _where(_b("equal", win, -1), ct, 0.0)
    gu = _where(_b("equal", apply1("gather_nd", [win, idx]), ids), apply1("gather_nd", [ct, idx]), 0.0)
    return [gd, None, unbroadcast(gu, upd.shape)]


@_rule("put_along_axis")
def _put_along_rule(ct, inputs, outputs, attrs, needs):  # as scatter_nd, along one axis
    data, idx, upd = inputs
    axis = attrs["axis"] % data.ndim
    red = attrs.get("reduction", "none")
    ushape = tuple(idx.shape[i] if i == axis else data.shape[i] for i in range(data.ndim))
    ib = _bcast(idx, list(ushape))
    if red == "add":
        gu = apply1("take_along_axis", [ct, ib], axis=axis)
        return [ct, None, unbroadcast(gu, upd.shape)]
    if red in ("max", "min"):
        return _scatter_extreme(ct, data, upd, outputs[0],
                                lambda d, u, r: apply1("put_along_axis", [d, ib, u], axis=axis, reduction=r),
                                lambda v: apply1("take_along_axis", [v, ib], axis=axis))
    if red != "none":
        raise ValueError(f"grad: no gradient for put_along_axis with reduction '{red}' (only none, add, max, min)")
    win, ids = _winner_ids(data.shape, ushape,
                           lambda d, u: apply1("put_along_axis", [d, ib, u], axis=axis, reduction="none"))
    gd = _where(_b("equal", win, -1), ct, 0.0)
    picked = apply1("take_along_axis", [win, ib], axis=axis)
    gu = _where(_b("equal", picked, ids), apply1("take_along_axis", [ct, ib], axis=axis), 0.0)
    return [gd, None, unbroadcast(gu, upd.shape)]


@_rule("sort")
def _sort_rule(ct, inputs, outputs, attrs, needs):  # values: ct goes back to where each value came from
    x = inputs[0]
    if outputs[0] is None:
        return [None]
    axis = attrs.get("axis", -1) % x.ndim
    idx = apply("sort", [_stop(x)], **attrs)[1]
    return [apply1("put_along_axis", [_zeros(x.shape, ct.dtype), idx, ct], axis=axis, reduction="add")]


@_rule("topk")
def _topk_rule(ct, inputs, outputs, attrs, needs):  # values: ct goes back to the picked elements
    x = inputs[0]
    if outputs[0] is None:
        return [None]
    axis = attrs.get("axis", -1) % x.ndim
    idx = apply("topk", [_stop(x)], **attrs)[1]
    return [apply1("put_along_axis", [_zeros(x.shape, ct.dtype), idx, ct], axis=axis, reduction="add")]


def _stop(x: Var) -> Var:
    from .autograd import stop_gradient
    return stop_gradient(x)


# ---- linear algebra --------------------------------------------------------------------------

@_rule("matmul")
def _matmul_rule(ct, inputs, outputs, attrs, needs):  # dA = ct B^T, dB = A^T ct (then transposes / batch sums)
    a, b = inputs
    ta = bool(attrs.get("transpose_a", False)) and a.ndim >= 2
    tb = bool(attrs.get("transpose_b", False)) and b.ndim >= 2
    a2 = _reshape(a, [1, a.shape[0]]) if a.ndim == 1 else a
    b2 = _reshape(b, [b.shape[0], 1]) if b.ndim == 1 else b
    m = a2.shape[-1] if ta else a2.shape[-2]
    n = b2.shape[-2] if tb else b2.shape[-1]
    batch = list(np.broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2])))
    c2 = _reshape(ct, batch + [m, n])

    def mm(x: Var, y: Var, tx: bool, ty: bool) -> Var:
        return apply1("matmul", [x, y], transpose_a=tx, transpose_b=ty)

    da = db = None
    if needs[0]:
        da = mm(b2, c2, tb, True) if ta else mm(c2, b2, False, not tb)
        da = _reshape(unbroadcast(da, a2.shape), a.shape)
    if needs[1]:
        db = mm(c2, a2, True, ta) if tb else mm(a2, c2, not ta, False)
        db = _reshape(unbroadcast(db, b2.shape), b.shape)
    return [da, db]


def _batched(v: Var) -> Var:
    return _reshape(v, [1] + list(v.shape)) if v.ndim == 3 else v


def _filter_grad(x: Var, gy: Var, wshape: tuple, stride: list, pads: list, dil: list, groups: int) -> Var:
    """dW of y = conv2d(x, W) for W of shape [O, C/g, kh, kw] and y's cotangent ``gy`` (4-d)."""
    return apply1("conv2d_backprop_filter", [x, gy], kernel=[int(wshape[2]), int(wshape[3])], stride=list(stride),
                  pads=[int(pads[0]), int(pads[1])], dilation=list(dil), groups=groups)


def _filter_input_grad(ct: Var, w: Var, hw: tuple, stride: list, pads: list, dil: list, groups: int) -> Var:
    """dx of y = conv2d(x, W) for x of spatial size ``hw``, y's cotangent ``ct`` (4-d) and W."""
    # no bottom/right pads here: they would crop real rows; _fit crops the padding rows instead
    dx = apply1("conv2d_transpose", [ct, w], stride=list(stride), pads=[int(pads[0]), int(pads[1]), 0, 0],
                dilation=list(dil), groups=groups, output_padding=[0, 0])
    return _fit(dx, hw[0], hw[1])


def _fit(v: Var, h: int, w: int) -> Var:
    """Crops or zero-pads the last two dims of ``v`` to ``h`` x ``w``."""
    H, W = v.shape[-2], v.shape[-1]
    if H > h or W > w:
        v = apply1("slice", [v], begins=[0] * v.ndim, ends=list(v.shape[:-2]) + [min(H, h), min(W, w)],
                   steps=[1] * v.ndim)
    if v.shape[-2] < h or v.shape[-1] < w:
        pads = [0] * (2 * v.ndim)
        pads[-3], pads[-1] = h - v.shape[-2], w - v.shape[-1]
        v = apply1("pad", [v], pads=pads, mode="constant", value=0.0)
    return v


@_rule("conv2d")
def _conv2d_rule(ct, inputs, outputs, attrs, needs):  # dx = conv_transpose(ct, W); dW = filter grad; db = sum ct
    x, w = inputs[0], inputs[1]
    s, p, d, g = list(attrs["stride"]), list(attrs["pads"]), list(attrs["dilation"]), int(attrs["groups"])
    xb, cb = _batched(x), _batched(ct)
    out = [None] * len(inputs)
    if needs[0]:
        out[0] = _reshape(_filter_input_grad(cb, w, xb.shape[2:], s, p, d, g), x.shape)
    if needs[1]:
        out[1] = _filter_grad(xb, cb, w.shape, s, p, d, g)
    if len(inputs) == 3 and needs[2]:
        out[2] = _sum(cb, [0, 2, 3])
    return out


@_rule("conv2d_transpose")
def _deconv_rule(ct, inputs, outputs, attrs, needs):  # adjoint of conv2d: dx = conv(ct, W); dW = filter grad(ct, x)
    x, w = inputs[0], inputs[1]
    s, p, d, g = list(attrs["stride"]), list(attrs["pads"]), list(attrs["dilation"]), int(attrs["groups"])
    xb, cb = _batched(x), _batched(ct)
    out = [None] * len(inputs)
    if needs[0]:
        dx = apply1("conv2d", [cb, w], stride=s, pads=p, dilation=d, groups=g)
        out[0] = _reshape(_fit(dx, xb.shape[2], xb.shape[3]), x.shape)
    if needs[1]:  # y = conv2d_transpose(x, W) is x = conv2d(y, W)'s adjoint: ct plays the input, x the cotangent
        out[1] = _filter_grad(cb, xb, w.shape, s, p, d, g)
    if len(inputs) == 3 and needs[2]:
        out[2] = _sum(cb, [0, 2, 3])
    return out


@_rule("conv2d_backprop_filter")
def _filter_rule(ct, inputs, outputs, attrs, needs):  # bilinear in (x, dy): each grad is a convolution with ct
    x, gy = inputs
    s, p, d, g = list(attrs["stride"]), list(attrs["pads"]), list(attrs["dilation"]), int(attrs["groups"])
    out = [None, None]
    if needs[0]:  # dW = F(x, dy) is conv2d's weight grad: its x-adjoint is conv2d's input grad with W = ct
        out[0] = _filter_input_grad(gy, ct, x.shape[2:], s, p, d, g)
    if needs[1]:  # ... and its dy-adjoint is conv2d(x, ct), cut or zero-extended to dy's size
        H, W = x.shape[2], x.shape[3]
        kh, kw = ct.shape[2], ct.shape[3]
        OH, OW = gy.shape[2], gy.shape[3]
        pb = max(0, (OH - 1) * s[0] + d[0] * (kh - 1) + 1 - H - p[0])
        pr = max(0, (OW - 1) * s[1] + d[1] * (kw - 1) + 1 - W - p[1])
        y = apply1("conv2d", [x, ct], stride=s, pads=[p[0], p[1], pb, pr], dilation=d, groups=g)
        out[1] = _fit(y, OH, OW)
    return out


def _max_pool_sources(x: Var, attrs: dict) -> Var:
    """Per window of max_pool2d(x) (x 4-d), the flat index in its H*W plane of the first maximum
    (H*W for a window of padding only): [N, C, OH*OW] int64, built from ops (argmax over the taps)."""
    N, C, H, W = x.shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    pt, pl = attrs["pads"][0], attrs["pads"][1]
    dh, dw = attrs["dilation"]
    y = apply1("max_pool2d", [_stop(x)], **attrs)  # the output's size settles ceil_mode
    OH, ow_n = y.shape[2], y.shape[3]
    ih = (np.arange(OH)[:, None] * sh - pt + np.arange(kh)[None, :] * dh)  # [OH, kh]
    iw = (np.arange(ow_n)[:, None] * sw - pl + np.arange(kw)[None, :] * dw)  # [OW, kw]
    ih4 = ih[:, None, :, None]
    iw4 = iw[None, :, None, :]
    valid = (ih4 >= 0) & (ih4 < H) & (iw4 >= 0) & (iw4 < W)  # [OH, OW, kh, kw]
    pos = np.where(valid, ih4 * W + iw4, H * W).reshape(OH, ow_n, kh * kw)  # H*W: the padding slot
    plane = _reshape(x, [N, C, H * W])
    padded = apply1("pad", [plane], pads=[0, 0, 0, 0, 0, 1], mode="constant", value=-np.inf)
    taps = apply1("gather", [_stop(padded), _const(pos.astype(np.int64))], axis=2)  # [N, C, OH, OW, K]
    k = apply1("argmax", [taps], axis=4, keepdims=False)  # [N, C, OH, OW]
    src = apply1("take_along_axis", [_bcast(_const(pos.astype(np.int64)), [N, C, OH, ow_n, kh * kw]),
                                     _reshape(k, [N, C, OH, ow_n, 1])], axis=4)  # [N, C, OH, OW, 1]
    return _reshape(src, [N, C, OH * ow_n])


@_rule("softmax")
def _softmax_rule(ct, inputs, outputs, attrs, needs):  # y * (ct - sum(ct * y))
    y = outputs[0]
    ax = [int(attrs["axis"])]
    return [_b("multiply", y, _b("subtract", ct, _sum(_b("multiply", ct, y), ax, keepdims=True)))]


@_rule("log_softmax")
def _log_softmax_rule(ct, inputs, outputs, attrs, needs):  # ct - softmax * sum(ct)
    y = outputs[0]
    ax = [int(attrs["axis"])]
    return [_b("subtract", ct, _b("multiply", _u("exp", y), _sum(ct, ax, keepdims=True)))]


@_rule("layer_norm")
def _layer_norm_rule(ct, inputs, outputs, attrs, needs):  # rstd * (ct - mean(ct) - y * mean(ct * y))
    x, y = inputs[0], outputs[0]
    axes = list(range(int(attrs["axis"]) % x.ndim, x.ndim))

    def mean(v):
        return apply1("reduce_mean", [v], axes=axes, keepdims=True)

    d = _b("subtract", x, mean(x))
    rstd = _u("rsqrt", _b("add", mean(_b("multiply", d, d)), float(attrs["eps"])))
    inner = _b("subtract", _b("subtract", ct, mean(ct)), _b("multiply", y, mean(_b("multiply", ct, y))))
    return [_b("multiply", rstd, inner)]


@_rule("max_pool2d")
def _max_pool_rule(ct, inputs, outputs, attrs, needs):  # ct to the first maximum of each window (PyTorch)
    return [apply1("max_pool2d_grad", [inputs[0], ct], **attrs)]


@_rule("max_pool2d_grad")
def _max_pool_grad_rule(ct, inputs, outputs, attrs, needs):  # linear in dy: dy's grad picks ct at each window's max
    x, gy = inputs
    out = [None, None]
    if needs[0]:  # piecewise constant in x
        out[0] = _zeros(x.shape, ct.dtype)
    if needs[1]:
        xb, cb = _batched(x), _batched(ct)
        N, C, H, W = xb.shape
        src = _max_pool_sources(xb, attrs)  # [N, C, OH*OW]
        plane = apply1("pad", [_reshape(cb, [N, C, H * W])], pads=[0, 0, 0, 0, 0, 1], mode="constant", value=0.0)
        picked = apply1("take_along_axis", [plane, src], axis=2)
        out[1] = _reshape(picked, gy.shape)
    return out


@_rule("avg_pool2d")
def _avg_pool_rule(ct, inputs, outputs, attrs, needs):  # ct / divisor over each window (depthwise conv_transpose)
    x = inputs[0]
    xb, cb = _batched(x), _batched(ct)
    N, C, H, W = xb.shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    pt, pl = attrs["pads"][0], attrs["pads"][1]
    OH, OW = cb.shape[2], cb.shape[3]
    # 1/divisor per output: avg_pool of ones (= valid/divisor) over the count of valid taps
    ones_in = _const(np.ones((1, 1, H, W), dtype=np.float64))
    frac = np.asarray(apply1("avg_pool2d", [ones_in], **attrs).read())[0, 0]
    ih = np.arange(OH)[:, None] * sh - pt + np.arange(kh)[None, :]
    iw = np.arange(OW)[:, None] * sw - pl + np.arange(kw)[None, :]
    cnt = ((ih >= 0) & (ih < H)).sum(1)[:, None] * ((iw >= 0) & (iw < W)).sum(1)[None, :]
    inv = np.where(cnt > 0, frac / np.maximum(cnt, 1), 0.0)
    scaled = _b("multiply", cb, _native.cast(_const(inv), ct.dtype.name))
    ker = _zeros([C, 1, kh, kw], ct.dtype) + 1.0
    g = apply1("conv2d_transpose", [scaled, ker], stride=[sh, sw], pads=[pt, pl, 0, 0], dilation=[1, 1], groups=C,
               output_padding=[0, 0])
    return [_reshape(_fit(g, H, W), x.shape)]


# ---- control flow ------------------------------------------------------------------------------

@_rule("if")
def _if_rule(ct, inputs, outputs, attrs, needs):  # an if whose branches are the branches' vjps
    from .autograd import grad
    from .control_flow import _params, _union
    from .creation import placeholder
    from .graph_capture import capture_body

    j = next(k for k, o in enumerate(outputs) if o is not None)  # the output ct belongs to
    pred, operands = inputs[0], inputs[1:]
    wrt = [k for k, x in enumerate(operands) if needs[k + 1] and x.dtype.is_floating]
    if not wrt:
        return [None] * len(inputs)

    def vjp(body: Any) -> Any:  # (operands..., ct) -> grads of output j w.r.t. operands[wrt]
        params = _params(operands) + [placeholder(ct.shape, ct.dtype, name="ct")]
        for k in wrt:
            params[k].requires_grad = True

        def call(ps: list) -> list:
            out = body.run(ps[:-1])[j]
            if not out.requires_grad:  # this branch does not read the inputs gradients are wanted for
                return [_zeros(ps[k].shape, ps[k].dtype) for k in wrt]
            return grad(out, [ps[k] for k in wrt], grad_outputs=ps[-1])
        return capture_body(call, params, call)

    t, f = vjp(attrs["then_graph"]), vjp(attrs["else_graph"])
    caps = _union(t.captures, f.captures)
    gs = _native.apply("if", [pred, *operands, ct, *caps], {"then_graph": t.subgraph(caps),
                                                              "else_graph": f.subgraph(caps)})
    out: list = [None] * len(inputs)
    for k, g in zip(wrt, gs):
        out[k + 1] = g
    return out


@_rule("loop")
def _loop_rule(ct, inputs, outputs, attrs, needs):  # the body's vjp run backwards (see control_flow.loop_vjp)
    from .control_flow import loop_vjp
    return loop_vjp(ct, next(k for k, o in enumerate(outputs) if o is not None), inputs, attrs)


def rule_for(op: str) -> Optional[Rule]:
    """The gradient rule of primitive ``op`` (None when it has none)."""
    return RULES.get(op)


__all__ = ["RULES", "NON_DIFFERENTIABLE", "NON_DIFFERENTIABLE_OUTPUTS", "unbroadcast", "rule_for"]
