"""Records for the elementwise family: unary math, binary ops, where, cast, activations."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from tests.op_records import ALL, FLOATS, HALFS, INTS, NUMERIC, SIGNED, OpRecord, broadcast_shapes

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _erfinv(y):
    from scipy.special import erfinv  # scipy is optional; fall back to bisection

    return erfinv(y)


def _erfinv_ref(y):
    try:
        return _erfinv(y)
    except ImportError:
        y = np.asarray(y, np.float64)
        lo, hi = np.full_like(y, -6.0), np.full_like(y, 6.0)
        for _ in range(80):
            mid = (lo + hi) / 2
            big = _erf(mid) > y
            hi, lo = np.where(big, mid, hi), np.where(big, lo, mid)
        return (lo + hi) / 2


def _keep(dtype_fn):
    """Reference whose result keeps the input dtype (float math on halves)."""
    return dtype_fn


def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


# name -> (numpy reference, dtypes, value range)
UNARY = {
    "negative": (np.negative, NUMERIC + HALFS, (-3, 3)),
    "abs": (np.abs, NUMERIC + HALFS, (-3, 3)),
    "sign": (np.sign, NUMERIC + HALFS, (-3, 3)),
    "floor": (np.floor, FLOATS + HALFS, (-3, 3)),
    "ceil": (np.ceil, FLOATS + HALFS, (-3, 3)),
    "round": (np.round, FLOATS + HALFS, (-3, 3)),
    "trunc": (np.trunc, FLOATS + HALFS, (-3, 3)),
    "sqrt": (np.sqrt, FLOATS + HALFS + INTS, (0, 5)),
    "rsqrt": (lambda x: 1 / np.sqrt(x), FLOATS + HALFS, (0.1, 5)),
    "cbrt": (np.cbrt, FLOATS + HALFS, (-5, 5)),
    "square": (np.square, NUMERIC + HALFS, (-3, 3)),
    "reciprocal": (lambda x: 1 / x, FLOATS + HALFS, (0.2, 3)),
    "exp": (np.exp, FLOATS + HALFS + INTS, (-3, 3)),
    "exp2": (np.exp2, FLOATS + HALFS, (-3, 3)),
    "expm1": (np.expm1, FLOATS + HALFS, (-3, 3)),
    "log": (np.log, FLOATS + HALFS, (0.1, 5)),
    "log2": (np.log2, FLOATS + HALFS, (0.1, 5)),
    "log10": (np.log10, FLOATS + HALFS, (0.1, 5)),
    "log1p": (np.log1p, FLOATS + HALFS, (-0.5, 5)),
    "sin": (np.sin, FLOATS + HALFS + INTS, (-3, 3)),
    "cos": (np.cos, FLOATS + HALFS, (-3, 3)),
    "tan": (np.tan, FLOATS + HALFS, (-1.2, 1.2)),
    "arcsin": (np.arcsin, FLOATS + HALFS, (-0.99, 0.99)),
    "arccos": (np.arccos, FLOATS + HALFS, (-0.99, 0.99)),
    "arctan": (np.arctan, FLOATS + HALFS, (-3, 3)),
    "sinh": (np.sinh, FLOATS + HALFS, (-3, 3)),
    "cosh": (np.cosh, FLOATS + HALFS, (-3, 3)),
    "tanh": (np.tanh, FLOATS + HALFS, (-3, 3)),
    "arcsinh": (np.arcsinh, FLOATS + HALFS, (-3, 3)),
    "arccosh": (np.arccosh, FLOATS + HALFS, (1.01, 5)),
    "arctanh": (np.arctanh, FLOATS + HALFS, (-0.95, 0.95)),
    "erf": (_erf, FLOATS + HALFS, (-3, 3)),
    "erfc": (_erfc, FLOATS + HALFS, (-3, 3)),
    "erfinv": (_erfinv_ref, FLOATS, (-0.99, 0.99)),
    "sigmoid": (_sigmoid, FLOATS + HALFS, (-6, 6)),
    "relu": (lambda x: np.maximum(x, 0).astype(x.dtype), NUMERIC + HALFS, (-3, 3)),
    "gelu": (lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), FLOATS + HALFS, (-4, 4)),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (x + 0.044715 * x.astype(np.float64) ** 3))),
                  FLOATS + HALFS, (-4, 4)),
    "silu": (lambda x: x * _sigmoid(x), FLOATS + HALFS, (-6, 6)),
    "softplus": (lambda x: np.logaddexp(0, x.astype(np.float64)), FLOATS + HALFS, (-10, 10)),
    "softsign": (lambda x: x / (1 + np.abs(x)), FLOATS + HALFS, (-3, 3)),
    "logical_not": (np.logical_not, ALL, (-2, 2)),
    "bitwise_not": (np.invert, INTS + ("bool",), (-3, 3)),
    "isnan": (np.isnan, FLOATS + HALFS + INTS, (-3, 3)),
    "isinf": (np.isinf, FLOATS + HALFS + INTS, (-3, 3)),
    "isfinite": (np.isfinite, FLOATS + HALFS + INTS, (-3, 3)),
}

# Float-only functions compute in float; the dtype follows our rule (ints -> float32).
_FLOAT_RESULT = {"erf", "erfc", "erfinv", "sigmoid", "gelu", "gelu_tanh", "silu", "softplus"}


def _unary_record(name, ref, dtypes, rng):
    lo, hi = rng

    def fn(F, x, _name=name):
        return getattr(F, _name)(x)

    def result_dtype(dtype, params, _name=name):
        if _name in ("logical_not", "isnan", "isinf", "isfinite"):
            return "bool"
        return dtype if dtype not in INTS and dtype != "bool" else "float32"

    special = name in _FLOAT_RESULT or name == "relu"
    return OpRecord(
        name=name, fn=fn, ref=ref, nargs=1, dtypes=dtypes, low=lo, high=hi, covers=(name,),
        result_dtype=result_dtype if special or name in ("logical_not",) else None,
        rtol=2e-5, atol=2e-6,
    )


def _with_nonfinite(rng, shp, dtype, params):
    a = rng.uniform(-3, 3, shp[0]).astype("float32" if dtype == "bfloat16" else dtype)
    if a.size:
        flat = a.reshape(-1)
        flat[rng.integers(0, a.size, max(1, a.size // 3))] = rng.choice([np.nan, np.inf, -np.inf])
    return [a]


RECORDS = []
for _name, (_ref, _dtypes, _rng) in UNARY.items():
    rec = _unary_record(_name, _ref, _dtypes, _rng)
    if _name in ("isnan", "isinf", "isfinite"):
        rec.dtypes = FLOATS + ("float16",)
        rec.values = _with_nonfinite
    if _name == "relu":
        rec.result_dtype = lambda dtype, params: dtype
    RECORDS.append(rec)


def _div_values(nonzero_second=True, positive_second=False):
    def values(rng, shp, dtype, params):
        out = []
        for i, s in enumerate(shp):
            if dtype in INTS:
                lo = 0 if dtype == "uint8" else -20
                a = rng.integers(lo, 20, s).astype(dtype)
                if i == 1 and nonzero_second:
                    a[a == 0] = 3
            else:
                a = rng.uniform(-5, 5, s)
                if i == 1:
                    a = np.where(np.abs(a) < 0.25, 1.5, a)
                a = a.astype("float32" if dtype == "bfloat16" else dtype)
            out.append(np.asarray(a))
        return out

    return values


def _pow_values(rng, shp, dtype, params):
    if dtype in INTS:
        return [rng.integers(0 if dtype == "uint8" else -4, 5, shp[0]).astype(dtype),
                rng.integers(0, 4, shp[1]).astype(dtype)]
    return [rng.uniform(0.1, 3, shp[0]).astype("float32" if dtype == "bfloat16" else dtype),
            rng.uniform(-2, 2, shp[1]).astype("float32" if dtype == "bfloat16" else dtype)]


def _shift_values(rng, shp, dtype, params):
    bits = np.dtype(dtype).itemsize * 8
    return [rng.integers(0 if dtype == "uint8" else -50, 50, shp[0]).astype(dtype),
            rng.integers(0, bits - 1, shp[1]).astype(dtype)]


_bool_ref = dict(result_dtype=lambda dtype, params: "bool")

BINARY = [
    ("add", np.add, ALL, {}),
    ("subtract", np.subtract, NUMERIC + HALFS, {}),
    ("multiply", np.multiply, ALL, {}),
    ("divide", np.divide, FLOATS + HALFS + INTS, dict(values=_div_values())),
    ("floor_divide", np.floor_divide, NUMERIC, dict(values=_div_values())),
    ("mod", np.mod, NUMERIC, dict(values=_div_values())),
    ("fmod", np.fmod, NUMERIC, dict(values=_div_values())),
    ("power", np.power, NUMERIC, dict(values=_pow_values, rtol=1e-5)),
    ("maximum", np.maximum, ALL, {}),
    ("minimum", np.minimum, ALL, {}),
    ("arctan2", np.arctan2, FLOATS + HALFS, {}),
    ("hypot", np.hypot, FLOATS + HALFS, {}),
    ("copysign", np.copysign, FLOATS, {}),
    ("squared_difference", lambda a, b: np.square(a - b), NUMERIC, dict(low=-3, high=3)),
    ("equal", np.equal, ALL, dict(low=-1, high=1, **_bool_ref)),
    ("not_equal", np.not_equal, ALL, dict(low=-1, high=1, **_bool_ref)),
    ("less", np.less, ALL, _bool_ref),
    ("less_equal", np.less_equal, ALL, _bool_ref),
    ("greater", np.greater, ALL, _bool_ref),
    ("greater_equal", np.greater_equal, ALL, _bool_ref),
    ("logical_and", np.logical_and, ALL, _bool_ref),
    ("logical_or", np.logical_or, ALL, _bool_ref),
    ("logical_xor", np.logical_xor, ALL, _bool_ref),
    ("bitwise_and", np.bitwise_and, INTS + ("bool",), {}),
    ("bitwise_or", np.bitwise_or, INTS + ("bool",), {}),
    ("bitwise_xor", np.bitwise_xor, INTS + ("bool",), {}),
    ("left_shift", np.left_shift, INTS, dict(values=_shift_values)),
    ("right_shift", np.right_shift, INTS, dict(values=_shift_values)),
]

for _name, _ref, _dtypes, _kw in BINARY:
    RECORDS.append(OpRecord(
        name=_name, fn=lambda F, a, b, _n=_name: getattr(F, _n)(a, b), ref=_ref, nargs=2, dtypes=_dtypes,
        shapes=broadcast_shapes(2), covers=(_name,), **_kw))

# Python operators and weak scalars share the same primitives.
RECORDS += [
    OpRecord("op_add_scalar", lambda F, a: a + 2, lambda a: a + a.dtype.type(2), dtypes=NUMERIC + HALFS,
             covers=("add",)),
    OpRecord("op_rsub_float", lambda F, a: 1.5 - a,
             lambda a: (np.float32(1.5) if a.dtype.kind != "f" else a.dtype.type(1.5)) - a,
             dtypes=FLOATS + SIGNED, covers=("subtract",)),
    OpRecord("op_matmul_free_ops", lambda F, a, b: (a * b - a) / 2, lambda a, b: (a * b - a) / 2, nargs=2,
             shapes=broadcast_shapes(2), covers=("multiply", "subtract", "divide")),
    OpRecord("op_compare", lambda F, a, b: a <= b, lambda a, b: a <= b, nargs=2, dtypes=NUMERIC,
             shapes=broadcast_shapes(2), covers=("less_equal",)),
    OpRecord("op_invert_bool", lambda F, a: ~a, np.logical_not, dtypes=("bool",), covers=("logical_not",)),
    OpRecord("op_floordiv_mod", lambda F, a, b: [a // b, a % b], lambda a, b: [a // b, a % b], nargs=2,
             dtypes=SIGNED + FLOATS, shapes=broadcast_shapes(2), values=_div_values(), covers=("floor_divide", "mod")),
]


def _where_values(rng, shp, dtype, params):
    c = rng.random(shp[0]) < 0.5
    x = rng.uniform(-3, 3, shp[1]).astype("float32" if dtype == "bfloat16" else dtype)
    y = rng.uniform(-3, 3, shp[2]).astype("float32" if dtype == "bfloat16" else dtype)
    return [c, x, y]


RECORDS += [
    OpRecord("where", lambda F, c, x, y: F.where(c, x, y), np.where, nargs=3, dtypes=FLOATS + INTS + HALFS,
             shapes=broadcast_shapes(3), values=_where_values, covers=("where",),
             result_dtype=lambda dtype, params: dtype),
    OpRecord("clip", lambda F, x: F.clip(x, 0 if x.dtype == "uint8" else -1, 1.5 if x.dtype.is_floating else 2),
             lambda x: np.clip(x, -1 if x.dtype != np.uint8 else 0, 1.5 if x.dtype.kind == "f" else 2).astype(x.dtype),
             dtypes=NUMERIC, covers=("maximum", "minimum")),
    OpRecord("relu6", lambda F, x: F.relu6(x * 3), lambda x: np.clip(x * 3, 0, 6), covers=("maximum", "minimum")),
    OpRecord("leaky_relu", lambda F, x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, x * x.dtype.type(0.1)),
             covers=("where", "greater")),
    OpRecord("elu", lambda F, x: F.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), covers=("expm1",)),
    OpRecord("selu", lambda F, x: F.selu(x),
             lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)), covers=("expm1",)),
    OpRecord("prelu", lambda F, x: F.prelu(x, F.array(np.linspace(0.1, 0.5, x.shape[1]).astype(x.dtype.numpy))),
             lambda x: np.where(x > 0, x, x * np.linspace(0.1, 0.5, x.shape[1]).astype(x.dtype).reshape(
                 [x.shape[1]] + [1] * (x.ndim - 2))),
             shapes=st.tuples(st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)), covers=("where",)),
]


def _cast_values(rng, shp, dtype, params):
    a = rng.uniform(-100, 100, shp[0])
    return [a.astype("float32" if dtype == "bfloat16" else dtype)]


_CAST_TARGETS = ("bool", "int8", "uint8", "int32", "int64", "float16", "float32", "float64")


def _cast_ref(x, to):
    if np.dtype(to).kind in "iu" and x.dtype.kind == "f":
        return np.trunc(x).astype(np.int64).astype(to)  # wrap-around of out-of-range values, as C casts
    return x.astype(to)


RECORDS.append(OpRecord(
    "cast", lambda F, x, to: F.cast(x, to), _cast_ref, dtypes=ALL, values=None,
    params=lambda shp: st.fixed_dictionaries({"to": st.sampled_from(_CAST_TARGETS)}),
    result_dtype=lambda dtype, params: params["to"], covers=("cast",), low=-100, high=100,
    rtol=1e-3, atol=1e-3))
RECORDS.append(OpRecord(
    "astype_from_float", lambda F, x: x.astype("int32"), lambda x: np.trunc(x).astype(np.int32), dtypes=FLOATS,
    values=_cast_values, covers=("cast",)))
