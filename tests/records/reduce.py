"""Records for the reduction family: sum/mean/prod/max/min/any/all, argmax/argmin,
var/std/logsumexp/ptp/count_nonzero/nan*/average/moments, MNN's reduce_* and
cumsum/cumprod.

References compute halves in float32 and round back (as our kernels do), and
sums of integers in int64 (our documented dtype; NumPy gives uint64 for uint8).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from hypothesis import strategies as st

from tests.op_records import ALL, FLOATS, HALFS, INTS, NUMERIC, OpRecord, shapes

INT_LIKE = INTS + ("bool",)


# ---- axis strategies ----------------------------------------------------------------


def _count(shape, axis):
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


@st.composite
def _axis(draw, shape, nonempty=False, single=False):
    """None, an int or a tuple of distinct axes (some negative, in any order) of ``shape``.

    ``nonempty``: the reduced element count is > 0 (max/min/argmax raise otherwise).
    ``single``: None or one int axis (argmax, cumsum).
    """
    nd = len(shape)
    options = [None]
    for a in range(nd):
        options += [a, a - nd]
    if not single:
        options.append(())
        for _ in range(3):
            if nd:
                k = draw(st.integers(1, nd))
                axes = draw(st.permutations(range(nd)))[:k]
                options.append(tuple(a - nd if draw(st.booleans()) else a for a in axes))
    if nonempty:
        options = [o for o in options if _count(shape, o) > 0]
    return draw(st.sampled_from(options))


def _params(nonempty=False, single=False, keepdims=True, **extra):
    def make(shp):
        d = {"axis": _axis(shp[0], nonempty=nonempty, single=single)}
        if keepdims:
            d["keepdims"] = st.booleans()
        d.update(extra)
        return st.fixed_dictionaries(d)

    return make


@st.composite
def _shapes_with_elements(draw, max_dims=4):
    """Shapes with at least one axis of positive size (or 0-d), for argmax-like ops."""
    shp = draw(shapes(max_dims=max_dims))
    if shp and all(d == 0 for d in shp):
        shp = shp[:-1] + (draw(st.integers(1, 4)),)
    return (shp,)


# ---- references ---------------------------------------------------------------------------


def _quiet(f):
    """``f`` with NumPy's warnings about empty slices and NaN silenced (the values are what we compare)."""

    def ref(*xs, **p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return f(*xs, **p)

    return ref


def _up(f):
    """Computes float16 in float32 and rounds float results back (what our kernels do)."""

    def back(o):
        o = np.asarray(o)
        return o.astype(np.float16) if o.dtype == np.float32 else o

    def ref(*xs, **p):
        if xs and xs[0].dtype == np.float16:
            out = _quiet(f)(*[x.astype(np.float32) for x in xs], **p)
            return [back(o) for o in out] if isinstance(out, (list, tuple)) else back(out)
        return _quiet(f)(*xs, **p)

    return ref


def _acc_dtype(x):
    return np.int64 if x.dtype.kind in "biu" else None


def _sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=_acc_dtype(x))


def _prod(x, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims, dtype=_acc_dtype(x))


def _mean(x, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def _average(x, axis=None):
    # np.average without weights is np.mean, but it fails with ZeroDivisionError on empty outputs
    return np.mean(x, axis=axis) if x.size == 0 or axis == () else np.average(x, axis=axis)


def _int64_or_keep(dtype, params):
    return "int64" if dtype in INT_LIKE else dtype


def _float_result(dtype, params):
    return "float32" if dtype in INT_LIKE else dtype


def _logsumexp(x, axis=None, keepdims=False):
    x64 = x.astype(np.float64)
    ax = axis if axis is None or isinstance(axis, int) else tuple(axis)
    if ax == ():
        return x64
    if _count(x.shape, ax) == 0:
        return np.full(np.sum(x64, axis=ax, keepdims=keepdims).shape, -np.inf)
    m = np.max(x64, axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    r = np.log(np.sum(np.exp(x64 - m), axis=ax, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=ax if ax is not None else tuple(range(x.ndim)))


def _cum(f, identity):
    def ref(x, axis=None, exclusive=False, reverse=False):
        acc = _acc_dtype(x)
        if axis is None:
            x, axis = x.reshape(-1), 0
        if reverse:
            x = np.flip(x, axis)
        r = f(x, axis=axis, dtype=acc)
        if exclusive:
            r = (
                np.concatenate(
                    [np.full_like(np.take(r, [0], axis=axis), identity), np.delete(r, -1, axis=axis)],
                    axis=axis,
                )
                if x.shape[axis]
                else r
            )
        if reverse:
            r = np.flip(r, axis)
        return r

    return ref


# ---- value generators -----------------------------------------------------------------------


def _small_ints(lo, hi):
    def values(rng, shp, dtype, params):
        out = []
        for s in shp:
            if dtype == "bool":
                a = rng.random(s) < 0.5
            elif dtype in INTS:
                a = rng.integers(max(lo, 0) if dtype == "uint8" else lo, hi, s).astype(dtype)
            else:
                a = rng.uniform(0.5, 1.5, s).astype("float32" if dtype == "bfloat16" else dtype)
            out.append(np.asarray(a))
        return out

    return values


def _sparse(rng, shp, dtype, params):
    """Mostly zeros, so any/all/count_nonzero see both answers."""
    out = []
    for s in shp:
        mask = rng.random(s) < 0.3
        if dtype == "bool":
            a = mask
        else:
            a = np.where(mask, rng.integers(1, 5, s), 0).astype("float32" if dtype == "bfloat16" else dtype)
        out.append(np.asarray(a))
    return out


def _with_nan(rng, shp, dtype, params):
    """Floats with some NaN, and ties (values on a coarse grid)."""
    out = []
    for s in shp:
        a = np.round(rng.uniform(-3, 3, s) * 2) / 2
        a = a.astype("float32" if dtype == "bfloat16" else dtype)
        if a.size:
            flat = a.reshape(-1)
            flat[rng.random(a.size) < 0.15] = np.nan
        out.append(np.asarray(a))
    return out


def _ties(rng, shp, dtype, params):
    """Values with many ties (small ints, or floats on a coarse grid)."""
    out = []
    for s in shp:
        if dtype == "bool":
            a = rng.random(s) < 0.5
        elif dtype in INTS:
            a = rng.integers(0, 4, s).astype(dtype)
        else:
            a = (rng.integers(-3, 4, s) / 2).astype("float32" if dtype == "bfloat16" else dtype)
        out.append(np.asarray(a))
    return out


# ---- records ---------------------------------------------------------------------------------

_SUM_TOL = dict(rtol=1e-5, atol=1e-4)  # float32 sums of up to 625 terms of size 3, summed in different orders

RECORDS = [
    OpRecord(
        "sum",
        lambda F, x, **p: F.sum(x, **p),
        _up(_sum),
        dtypes=ALL,
        params=_params(),
        result_dtype=_int64_or_keep,
        covers=("reduce_sum",),
        **_SUM_TOL,
    ),
    OpRecord(
        "sum_method_dtype",
        lambda F, x, axis, keepdims: x.sum(axis, "float64", keepdims=keepdims),
        lambda x, axis, keepdims: np.sum(x, axis=axis, dtype=np.float64, keepdims=keepdims),
        dtypes=NUMERIC,
        params=_params(),
        result_dtype=lambda d, p: "float64",
        covers=("reduce_sum", "cast"),
    ),
    OpRecord(
        "mean",
        lambda F, x, **p: F.mean(x, **p),
        _up(_mean),
        dtypes=ALL,
        params=_params(),
        covers=("reduce_mean",),
        **_SUM_TOL,
    ),
    OpRecord(
        "mean_method",
        lambda F, x, **p: x.mean(**p),
        _up(_mean),
        dtypes=FLOATS + INTS,
        params=_params(),
        covers=("reduce_mean",),
        **_SUM_TOL,
    ),
    OpRecord(
        "prod",
        lambda F, x, **p: F.prod(x, **p),
        _up(_prod),
        dtypes=ALL,
        params=_params(),
        values=_small_ints(-3, 4),
        result_dtype=_int64_or_keep,
        covers=("reduce_prod",),
        rtol=1e-4,
    ),
    OpRecord(
        "prod_method",
        lambda F, x, **p: x.prod(**p),
        _up(_prod),
        dtypes=FLOATS + INTS,
        params=_params(),
        values=_small_ints(-3, 4),
        result_dtype=_int64_or_keep,
        covers=("reduce_prod",),
        rtol=1e-4,
    ),
    OpRecord(
        "max",
        lambda F, x, **p: F.max(x, **p),
        lambda x, **p: np.max(x, **p),
        dtypes=ALL,
        params=_params(nonempty=True),
        covers=("reduce_max",),
    ),
    OpRecord(
        "min",
        lambda F, x, **p: F.min(x, **p),
        lambda x, **p: np.min(x, **p),
        dtypes=ALL,
        params=_params(nonempty=True),
        covers=("reduce_min",),
    ),
    OpRecord(
        "amax_nan",
        lambda F, x, **p: F.amax(x, **p),
        lambda x, **p: np.amax(x, **p),
        dtypes=FLOATS + HALFS,
        params=_params(nonempty=True),
        values=_with_nan,
        covers=("reduce_max",),
    ),
    OpRecord(
        "amin_nan",
        lambda F, x, **p: F.amin(x, **p),
        lambda x, **p: np.amin(x, **p),
        dtypes=FLOATS + HALFS,
        params=_params(nonempty=True),
        values=_with_nan,
        covers=("reduce_min",),
    ),
    OpRecord(
        "max_method_initial",
        lambda F, x, **p: x.max(**p, initial=1),
        lambda x, **p: np.max(x, **p, initial=1),
        dtypes=FLOATS + INTS,
        params=_params(),
        covers=("reduce_max", "maximum"),
    ),
    OpRecord(
        "min_method",
        lambda F, x, **p: x.min(**p),
        lambda x, **p: np.min(x, **p),
        dtypes=NUMERIC,
        params=_params(nonempty=True),
        covers=("reduce_min",),
    ),
    OpRecord(
        "any",
        lambda F, x, **p: F.any(x, **p),
        lambda x, **p: np.any(x, **p),
        dtypes=ALL,
        params=_params(),
        values=_sparse,
        covers=("reduce_any",),
    ),
    OpRecord(
        "all",
        lambda F, x, **p: F.all(x, **p),
        lambda x, **p: np.all(x, **p),
        dtypes=ALL,
        params=_params(),
        values=_sparse,
        covers=("reduce_all",),
    ),
    OpRecord(
        "all_method_nonzero",
        lambda F, x, **p: x.all(**p),
        lambda x, **p: np.all(x, **p),
        dtypes=ALL,
        params=_params(),
        covers=("reduce_all",),
    ),
    OpRecord(
        "any_method",
        lambda F, x, **p: x.any(**p),
        lambda x, **p: np.any(x, **p),
        dtypes=NUMERIC,
        params=_params(),
        values=_sparse,
        covers=("reduce_any",),
    ),
    OpRecord(
        "argmax",
        lambda F, x, **p: F.argmax(x, **p),
        lambda x, **p: np.argmax(x, **p),
        dtypes=ALL,
        shapes=_shapes_with_elements(),
        params=_params(nonempty=True, single=True),
        values=_ties,
        covers=("argmax", "reshape"),
    ),
    OpRecord(
        "argmin",
        lambda F, x, **p: F.argmin(x, **p),
        lambda x, **p: np.argmin(x, **p),
        dtypes=ALL,
        shapes=_shapes_with_elements(),
        params=_params(nonempty=True, single=True),
        values=_ties,
        covers=("argmin", "reshape"),
    ),
    OpRecord(
        "argmax_nan",
        lambda F, x, **p: x.argmax(**p),
        lambda x, **p: np.argmax(x, **p),
        dtypes=FLOATS + HALFS,
        shapes=_shapes_with_elements(),
        params=_params(nonempty=True, single=True),
        values=_with_nan,
        covers=("argmax",),
    ),
    OpRecord(
        "argmin_nan",
        lambda F, x, **p: x.argmin(**p),
        lambda x, **p: np.argmin(x, **p),
        dtypes=FLOATS + HALFS,
        shapes=_shapes_with_elements(),
        params=_params(nonempty=True, single=True),
        values=_with_nan,
        covers=("argmin",),
    ),
    OpRecord(
        "var",
        lambda F, x, **p: F.var(x, **p),
        _up(lambda x, **p: np.var(x, **p)),
        dtypes=FLOATS + INTS + HALFS,
        params=_params(ddof=st.sampled_from([0, 1])),
        covers=("reduce_mean", "reduce_sum", "subtract"),
        rtol=1e-4,
        atol=1e-5,
    ),
    OpRecord(
        "std",
        lambda F, x, **p: F.std(x, **p),
        _up(lambda x, **p: np.std(x, **p)),
        dtypes=FLOATS + INTS + HALFS,
        params=_params(ddof=st.sampled_from([0, 1])),
        covers=("reduce_mean", "reduce_sum", "sqrt"),
        rtol=1e-4,
        atol=1e-5,
    ),
    OpRecord(
        "var_method",
        lambda F, x, **p: x.var(**p),
        _quiet(lambda x, **p: np.var(x, **p)),
        dtypes=FLOATS,
        params=_params(),
        covers=("reduce_mean", "reduce_sum"),
        rtol=1e-4,
        atol=1e-5,
    ),
    OpRecord(
        "std_method",
        lambda F, x, **p: x.std(**p),
        _quiet(lambda x, **p: np.std(x, **p)),
        dtypes=FLOATS,
        params=_params(),
        covers=("reduce_mean", "reduce_sum"),
        rtol=1e-4,
        atol=1e-5,
    ),
    OpRecord(
        "logsumexp",
        lambda F, x, **p: F.logsumexp(x, **p),
        _logsumexp,
        dtypes=FLOATS + INTS + HALFS,
        params=_params(),
        low=-30,
        high=30,
        covers=("reduce_max", "reduce_sum", "exp", "log"),
        rtol=1e-5,
        atol=1e-5,
    ),
    OpRecord(
        "logsumexp_inf",
        lambda F, x, **p: F.logsumexp(x, **p),
        _logsumexp,
        dtypes=FLOATS,
        params=_params(),
        values=lambda rng, shp, dt, p: [
            np.where(rng.random(shp[0]) < 0.3, -np.inf, rng.uniform(-3, 3, shp[0])).astype(dt)
        ],
        covers=("reduce_max", "reduce_sum", "where", "isfinite"),
        rtol=1e-5,
        atol=1e-5,
    ),
    OpRecord(
        "ptp",
        lambda F, x, **p: F.ptp(x, **p),
        lambda x, **p: np.ptp(x, **p),
        dtypes=NUMERIC + HALFS,
        params=_params(nonempty=True),
        covers=("reduce_max", "reduce_min", "subtract"),
    ),
    OpRecord(
        "count_nonzero",
        lambda F, x, **p: F.count_nonzero(x, **p),
        lambda x, **p: np.asarray(np.count_nonzero(x, **p), dtype=np.int64),
        dtypes=ALL,
        params=_params(),
        values=_sparse,
        covers=("reduce_sum", "cast"),
    ),
    OpRecord(
        "nansum",
        lambda F, x, **p: F.nansum(x, **p),
        _up(lambda x, **p: np.nansum(x, **p)),
        dtypes=FLOATS + HALFS,
        params=_params(),
        values=_with_nan,
        covers=("reduce_sum", "isnan", "where"),
        **_SUM_TOL,
    ),
    OpRecord(
        "nanmean",
        lambda F, x, **p: F.nanmean(x, **p),
        _up(lambda x, **p: np.nanmean(x, **p)),
        dtypes=FLOATS + HALFS,
        params=_params(),
        values=_with_nan,
        covers=("reduce_sum", "isnan"),
        **_SUM_TOL,
    ),
    OpRecord(
        "nanmax",
        lambda F, x, **p: F.nanmax(x, **p),
        _quiet(lambda x, **p: np.nanmax(x, **p)),
        dtypes=FLOATS,
        params=_params(nonempty=True),
        values=_with_nan,
        covers=("reduce_max", "reduce_all"),
    ),
    OpRecord(
        "nanmin",
        lambda F, x, **p: F.nanmin(x, **p),
        _quiet(lambda x, **p: np.nanmin(x, **p)),
        dtypes=FLOATS,
        params=_params(nonempty=True),
        values=_with_nan,
        covers=("reduce_min", "reduce_all"),
    ),
    OpRecord(
        "average",
        lambda F, x, **p: F.average(x, **p),
        _up(_average),
        dtypes=FLOATS + INTS,
        params=_params(keepdims=False),
        covers=("reduce_mean",),
        **_SUM_TOL,
    ),
    OpRecord(
        "average_weights",
        lambda F, x, w, **p: F.average(x, weights=w, **p),
        lambda x, w, **p: np.average(x, weights=w, **p),
        nargs=2,
        dtypes=FLOATS,
        params=_params(nonempty=True, keepdims=False),
        low=0.5,
        high=2.0,
        covers=("reduce_sum", "multiply", "divide"),
        **_SUM_TOL,
    ),
    OpRecord(
        "moments",
        lambda F, x, axis, keepdims: F.moments(x, axis, keep_dims=keepdims),
        _quiet(
            lambda x, axis, keepdims: [
                np.mean(x, axis=axis, keepdims=keepdims),
                np.var(x, axis=axis, keepdims=keepdims),
            ]
        ),
        dtypes=FLOATS,
        params=_params(),
        covers=("reduce_mean", "reduce_sum"),
        rtol=1e-4,
        atol=1e-5,
    ),
]

# MNN spellings: axis=[] reduces every axis.
_MNN = [
    ("reduce_sum", _sum, ALL, _int64_or_keep, {}),
    ("reduce_mean", _mean, FLOATS + INTS, None, {}),
    ("reduce_prod", _prod, NUMERIC, _int64_or_keep, dict(values=_small_ints(-3, 4))),
    ("reduce_max", np.max, NUMERIC, None, {}),
    ("reduce_min", np.min, NUMERIC, None, {}),
    ("reduce_any", np.any, ALL, None, dict(values=_sparse)),
    ("reduce_all", np.all, ALL, None, dict(values=_sparse)),
]


def _mnn_params(shp):
    nd = len(shp[0])
    axes = st.lists(st.integers(0, nd - 1), unique=True, max_size=nd) if nd else st.just([])
    return st.fixed_dictionaries({"axis": axes, "keepdims": st.booleans()})


def _mnn_ref(f):
    def ref(x, axis, keepdims):
        return _up(f)(x, axis=tuple(axis) if axis else None, keepdims=keepdims)

    return ref


for _name, _f, _dtypes, _rd, _kw in _MNN:
    _kw = {**_SUM_TOL, **({"rtol": 1e-4} if _name == "reduce_prod" else {}), **_kw}
    RECORDS.append(
        OpRecord(
            f"mnn_{_name}",
            lambda F, x, axis, keepdims, _n=_name: getattr(F, _n)(x, axis, keepdims),
            _mnn_ref(_f),
            dtypes=_dtypes,
            params=_mnn_params,
            result_dtype=_rd,
            covers=(_name,),
            shapes=st.tuples(shapes(min_side=1)) if _name in ("reduce_max", "reduce_min") else None,
            **_kw,
        )
    )

# Cumulative ops: axis None flattens; exclusive and reverse variants.
_cumsum_ref, _cumprod_ref = _cum(np.cumsum, 0), _cum(np.cumprod, 1)
_scan_params = _params(single=True, keepdims=False, exclusive=st.booleans(), reverse=st.booleans())

RECORDS += [
    OpRecord(
        "cumsum",
        lambda F, x, **p: F.cumsum(x, **p),
        _up(_cumsum_ref),
        dtypes=ALL,
        params=_scan_params,
        result_dtype=_int64_or_keep,
        covers=("cumsum", "reshape"),
        **_SUM_TOL,
    ),
    OpRecord(
        "cumprod",
        lambda F, x, **p: F.cumprod(x, **p),
        _up(_cumprod_ref),
        dtypes=ALL,
        params=_scan_params,
        values=_small_ints(-2, 3),
        result_dtype=_int64_or_keep,
        covers=("cumprod", "reshape"),
        rtol=1e-4,
    ),
    OpRecord(
        "cumsum_method",
        lambda F, x, axis: x.cumsum(axis),
        lambda x, axis: _cumsum_ref(x, axis),
        dtypes=FLOATS + INTS,
        params=_params(single=True, keepdims=False),
        result_dtype=_int64_or_keep,
        covers=("cumsum",),
        **_SUM_TOL,
    ),
    OpRecord(
        "cumprod_method",
        lambda F, x, axis: x.cumprod(axis),
        lambda x, axis: _cumprod_ref(x, axis),
        dtypes=FLOATS + INTS,
        params=_params(single=True, keepdims=False),
        values=_small_ints(-2, 3),
        result_dtype=_int64_or_keep,
        covers=("cumprod",),
        rtol=1e-4,
    ),
]
