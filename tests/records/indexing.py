"""Records for the index family: take/gather, gather_nd, take/put_along_axis, scatters, one_hot,
strided_slice, and the primitives behind ``x[...]`` and ``x[...] = v``."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.op_records import ALL, FLOATS, INTS, NUMERIC, SIGNED, OpRecord, shapes

MOVE = ALL


def _data(rng, s, dtype):
    if dtype == "bool":
        return rng.random(s) < 0.5
    if dtype in INTS:
        return rng.integers(0 if dtype == "uint8" else -9, 10, s).astype(dtype)
    return rng.uniform(-3, 3, s).astype("float32" if dtype == "bfloat16" else dtype)


def _idx(rng, n, shape, negative=True):
    """Indices valid for an axis of size n (negative ones included); none when n == 0."""
    if n == 0:
        return np.zeros((0,) * max(len(shape), 1), np.int64) if shape else np.zeros((0,), np.int64)
    lo = -n if negative else 0
    return rng.integers(lo, n, shape).astype(np.int64)


# ---- take / gather ----------------------------------------------------------------------


@st.composite
def _take_case(draw):
    data = draw(shapes(min_dims=1, min_side=1, max_dims=3))
    ind = draw(shapes(max_dims=2, max_side=4))
    return (data, ind)


def _take_values(rng, shp, dtype, params):
    data, ind = shp
    axis = params["axis"]
    n = int(np.prod(data)) if axis is None else data[axis]
    return [_data(rng, data, dtype), rng.integers(-n, n, ind).astype(params.get("itype", "int64"))]


def _take_params(shp):
    nd = len(shp[0])
    return st.fixed_dictionaries(
        {
            "axis": st.one_of(st.none(), st.integers(-nd, nd - 1)),
            "itype": st.sampled_from(["int64", "int32", "int8"]),
        }
    )


def _wrap_values(rng, shp, dtype, params):
    data, ind = shp
    return [_data(rng, data, dtype), rng.integers(-20, 20, ind).astype(np.int64)]


RECORDS = [
    OpRecord(
        "take",
        lambda F, x, i, axis, itype: F.take(x, i, axis),
        lambda a, i, axis, itype: np.take(a, i, axis),
        nargs=2,
        dtypes=MOVE,
        shapes=_take_case(),
        params=_take_params,
        values=_take_values,
        covers=("gather",),
    ),
    OpRecord(
        "take_static",
        lambda F, x, i, axis, itype: F.take(x, i.read(), axis),
        lambda a, i, axis, itype: np.take(a, i, axis),
        nargs=2,
        dtypes=("float32", "int8"),
        shapes=_take_case(),
        params=_take_params,
        values=_take_values,
        covers=("gather",),
    ),
    OpRecord(
        "take_wrap_clip",
        lambda F, x, i, mode: F.take(x, i, 0, mode=mode),
        lambda a, i, mode: np.take(a, i, 0, mode=mode),
        nargs=2,
        dtypes=("float32", "int32"),
        shapes=_take_case(),
        params=lambda shp: st.fixed_dictionaries({"mode": st.sampled_from(["wrap", "clip"])}),
        values=_wrap_values,
        covers=("gather", "mod", "maximum", "minimum"),
    ),
    OpRecord(
        "take_method",
        lambda F, x, i, axis, itype: x.take(i, axis=axis),
        lambda a, i, axis, itype: a.take(i, axis=axis),
        nargs=2,
        dtypes=("float64",),
        shapes=_take_case(),
        params=_take_params,
        values=_take_values,
        covers=("gather",),
    ),
    OpRecord(
        "gather",
        lambda F, x, i, axis, itype: F.gather(x, i),
        lambda a, i, axis, itype: np.take(a, i, 0),
        nargs=2,
        dtypes=MOVE,
        shapes=_take_case(),
        params=lambda shp: st.fixed_dictionaries({"axis": st.just(0), "itype": st.just("int32")}),
        values=_take_values,
        covers=("gather",),
    ),
]

# ---- gather_nd -----------------------------------------------------------------------------


@st.composite
def _nd_case(draw):
    data = draw(shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    k = draw(st.integers(0, len(data)))
    batch = draw(shapes(max_dims=2, max_side=3))
    return (data, batch + (k,))


def _nd_values(rng, shp, dtype, params):
    data, ind = shp
    k = ind[-1]
    cols = [rng.integers(-data[j], data[j], ind[:-1]) for j in range(k)]
    idx = np.stack(cols, -1) if k else np.zeros(ind, np.int64)
    return [_data(rng, data, dtype), idx.astype(np.int64).reshape(ind)]


def _gather_nd_ref(a, idx):
    k = idx.shape[-1]
    flat = idx.reshape(int(np.prod(idx.shape[:-1])), k)
    out = np.stack([a[tuple(r)] for r in flat]) if len(flat) else np.zeros((0,) + a.shape[k:], a.dtype)
    return out.reshape(idx.shape[:-1] + a.shape[k:])


RECORDS += [
    OpRecord(
        "gather_nd",
        lambda F, x, i: F.gather_nd(x, i),
        _gather_nd_ref,
        nargs=2,
        dtypes=MOVE,
        shapes=_nd_case(),
        values=_nd_values,
        covers=("gather_nd",),
    ),
    OpRecord(
        "gather_nd_static",
        lambda F, x, i: F.gather_nd(x, i.read()),
        _gather_nd_ref,
        nargs=2,
        dtypes=("float32",),
        shapes=_nd_case(),
        values=_nd_values,
        covers=("gather_nd",),
    ),
]

# ---- take_along_axis / put_along_axis --------------------------------------------------------


@st.composite
def _along_case(draw):
    data = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.integers(0, len(data) - 1))
    ind = tuple(
        draw(st.integers(0, 4)) if d == axis else draw(st.sampled_from([data[d], 1]))
        for d in range(len(data))
    )
    return (data, ind, (axis,))


def _along_values(rng, shp, dtype, params):
    data, ind, (axis,) = shp
    return [_data(rng, data, dtype), rng.integers(-data[axis], data[axis], ind).astype(np.int64)]


def _put_values(rng, shp, dtype, params):
    data, ind, (axis,) = shp
    space = tuple(ind[d] if d == axis else max(data[d], ind[d]) for d in range(len(data)))
    # distinct positions along the axis so that "last write wins" is not tested against numpy's order
    n = data[axis]
    idx = np.stack(
        [
            rng.permutation(n)[: ind[axis]]
            for _ in range(int(np.prod([ind[d] for d in range(len(ind)) if d != axis], dtype=int)))
        ]
    )
    idx = np.moveaxis(idx.reshape([ind[d] for d in range(len(ind)) if d != axis] + [ind[axis]]), -1, axis)
    return [_data(rng, data, dtype), idx.astype(np.int64), _data(rng, space, dtype)]


@st.composite
def _put_case(draw):
    data = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.integers(0, len(data) - 1))
    ind = tuple(
        draw(st.integers(0, data[d])) if d == axis else draw(st.sampled_from([data[d], 1]))
        for d in range(len(data))
    )
    return (data, ind, (axis,))


def _put_ref(a, i, v, axis, reduction="none"):
    out = a.copy()
    if reduction == "none":
        np.put_along_axis(out, i, v, axis)
        return out
    # add: the index grid numpy's put_along_axis builds, accumulated with add.at
    grids = [np.broadcast_to(g, v.shape) for g in np.ix_(*[np.arange(s) for s in v.shape])]
    target = [
        np.broadcast_to(i, v.shape) if d == axis else (grids[d] if a.shape[d] != 1 else 0 * grids[d])
        for d in range(a.ndim)
    ]
    np.add.at(out, tuple(target), v)
    return out


def _axis_param(shp):
    return st.just({"axis": shp[2][0]})


RECORDS += [
    OpRecord(
        "take_along_axis",
        lambda F, x, i, axis: F.take_along_axis(x, i, axis),
        lambda a, i, axis: np.take_along_axis(a, i, axis),
        nargs=2,
        dtypes=MOVE,
        shapes=_along_case(),
        params=_axis_param,
        values=_along_values,
        covers=("take_along_axis",),
    ),
    OpRecord(
        "put_along_axis",
        lambda F, x, i, v, axis: F.put_along_axis(x, i, v, axis),
        _put_ref,
        nargs=3,
        dtypes=MOVE,
        shapes=_put_case(),
        params=_axis_param,
        values=_put_values,
        covers=("put_along_axis",),
    ),
    OpRecord(
        "put_along_axis_add",
        lambda F, x, i, v, axis: F.put_along_axis(x, i, v, axis, reduction="add"),
        lambda a, i, v, axis: _put_ref(a, i, v, axis, "add"),
        nargs=3,
        dtypes=NUMERIC,
        shapes=_put_case(),
        params=_axis_param,
        values=_put_values,
        covers=("put_along_axis",),
    ),
]

# ---- scatter_nd (MNN/TF: duplicates add) and ONNX-style scatter -----------------------------


@st.composite
def _scatter_nd_case(draw):
    out = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    k = draw(st.integers(1, len(out)))
    m = draw(st.integers(0, 6))
    return ((m, k), (m,) + out[k:], out)


def _scatter_nd_values(rng, shp, dtype, params):
    (m, k), upd, out = shp
    idx = np.stack([rng.integers(0, out[j], m) for j in range(k)], -1).reshape(m, k)
    return [idx.astype(np.int64), _data(rng, upd, dtype)]


def _scatter_nd_ref(i, u, shape):
    out = np.zeros(shape, u.dtype)
    np.add.at(out, tuple(i.T), u)
    return out


RECORDS += [
    OpRecord(
        "scatter_nd",
        lambda F, i, u, shape: F.scatter_nd(i, u, shape),
        _scatter_nd_ref,
        nargs=2,
        dtypes=NUMERIC,
        shapes=_scatter_nd_case(),
        params=lambda shp: st.just({"shape": shp[2]}),
        values=_scatter_nd_values,
        covers=("scatter_nd",),
    ),
]


def _onnx_scatter_ref(a, i, u, axis):
    out = a.copy()
    for pos in np.ndindex(*i.shape):
        t = list(pos)
        t[axis] = i[pos]
        out[tuple(t)] = u[pos]
    return out


@st.composite
def _onnx_case(draw):
    data = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.integers(0, len(data) - 1))
    ind = tuple(draw(st.integers(0, data[d])) for d in range(len(data)))
    return (data, ind, (axis,))


def _onnx_values(rng, shp, dtype, params):
    data, ind, (axis,) = shp
    n = data[axis]
    idx = np.zeros(ind, np.int64)
    for pos in np.ndindex(*[ind[d] for d in range(len(ind)) if d != axis]):
        col = rng.permutation(n)[: ind[axis]]
        sl = list(pos)
        sl.insert(axis, slice(None))
        idx[tuple(sl)] = col
    return [_data(rng, data, dtype), idx, _data(rng, ind, dtype)]


RECORDS += [
    OpRecord(
        "scatter",
        lambda F, x, i, u, axis: F.scatter(x, i, u, axis),
        _onnx_scatter_ref,
        nargs=3,
        dtypes=MOVE,
        shapes=_onnx_case(),
        params=_axis_param,
        values=_onnx_values,
        covers=("put_along_axis", "raster", "slice"),
    ),
]

# ---- one_hot ------------------------------------------------------------------------------------


def _one_hot_ref(i, depth, axis):
    eye = (i[..., None] == np.arange(depth)).astype(np.float32)
    return np.moveaxis(eye, -1, axis)


RECORDS += [
    OpRecord(
        "one_hot",
        lambda F, i, depth, axis: F.one_hot(i, depth, axis=axis),
        lambda i, depth, axis: _one_hot_ref(i, depth, axis),
        dtypes=SIGNED + ("uint8",),
        low=-1,
        high=5,
        params=lambda shp: st.fixed_dictionaries(
            {"depth": st.integers(0, 5), "axis": st.integers(-len(shp[0]) - 1, len(shp[0]))}
        ),
        result_dtype=lambda dtype, params: "float32",
        covers=("equal", "where", "reshape"),
    ),
]

# ---- strided_slice -------------------------------------------------------------------------------


def _strided_params(shp):
    s = shp[0]
    nd = len(s)

    def one(d):
        return st.tuples(
            st.integers(-d - 2, d + 2), st.integers(-d - 2, d + 2), st.sampled_from([1, 2, -1, -3])
        )

    return st.tuples(*[one(d) for d in s]).flatmap(
        lambda parts: st.fixed_dictionaries(
            {
                "b": st.just([p[0] for p in parts]),
                "e": st.just([p[1] for p in parts]),
                "s": st.just([p[2] for p in parts]),
                "bm": st.integers(0, 2**nd - 1),
                "em": st.integers(0, 2**nd - 1),
            }
        )
    )


def _strided_ref(a, b, e, s, bm, em):
    key = tuple(
        slice(None if bm >> i & 1 else b[i], None if em >> i & 1 else e[i], s[i]) for i in range(len(b))
    )
    return a[key]


RECORDS += [
    OpRecord(
        "strided_slice",
        lambda F, x, b, e, s, bm, em: F.strided_slice(x, b, e, s, bm, em),
        _strided_ref,
        dtypes=MOVE,
        params=_strided_params,
        covers=("slice",),
    ),
    OpRecord(
        "strided_slice_shrink_newaxis",
        lambda F, x: F.strided_slice(x, [0, 0], [1, 0], [1, 1], 0, 0, 0, 2, 1),
        lambda a: a[0, None],
        dtypes=FLOATS,
        shapes=shapes(min_dims=1, min_side=1).map(lambda s: (s,)),
        covers=("slice", "reshape"),
    ),
]

# ---- x[...] and x[...] = v ------------------------------------------------------------------------


def _basic_key(shp):
    s = shp[0]

    def part(d):
        return st.one_of(
            st.integers(-d, d - 1) if d else st.nothing(),
            st.builds(
                slice,
                st.one_of(st.none(), st.integers(-d - 1, d + 1)),
                st.one_of(st.none(), st.integers(-d - 1, d + 1)),
                st.sampled_from([None, 1, 2, -1, -2]),
            ),
        )

    return (
        st.tuples(*[part(d) for d in s])
        .flatmap(lambda key: st.integers(0, len(key)).map(lambda j: key[:j] + (None,) + key[j:]))
        .map(lambda k: {"key": k})
    )


def _int_array_key(shp):
    s = shp[0]
    return st.integers(0, len(s) - 1).flatmap(
        lambda ax: st.lists(st.integers(-s[ax], s[ax] - 1), min_size=0, max_size=5).map(
            lambda idx: {"key": (slice(None),) * ax + (np.array(idx, np.int64),)}
        )
    )


def _two_arrays_key(shp):
    s = shp[0]
    return st.tuples(
        st.lists(st.integers(-s[0], s[0] - 1), min_size=1, max_size=3),
        st.integers(0, len(s) - 1).filter(lambda ax: ax > 0),
    ).flatmap(
        lambda t: st.lists(st.integers(-s[t[1]], s[t[1]] - 1), min_size=len(t[0]), max_size=len(t[0])).map(
            lambda j: {"key": (np.array(t[0]),) + (slice(None),) * (t[1] - 1) + (np.array(j),)}
        )
    )


RECORDS += [
    OpRecord(
        "getitem_basic",
        lambda F, x, key: x[key],
        lambda a, key: a[key],
        dtypes=MOVE,
        params=_basic_key,
        covers=("slice", "reshape"),
    ),
    OpRecord(
        "getitem_int_array",
        lambda F, x, key: x[key],
        lambda a, key: a[key],
        dtypes=MOVE,
        shapes=shapes(min_dims=1, min_side=1).map(lambda s: (s,)),
        params=_int_array_key,
        covers=("gather",),
    ),
    OpRecord(
        "getitem_int_var",
        lambda F, x, key: x[tuple(F.array(k) if isinstance(k, np.ndarray) else k for k in key)],
        lambda a, key: a[key],
        dtypes=MOVE,
        shapes=shapes(min_dims=2, min_side=1).map(lambda s: (s,)),
        params=_two_arrays_key,
        covers=("gather_nd", "transpose", "concat", "broadcast_to"),
    ),
    OpRecord(
        "getitem_two_arrays",
        lambda F, x, key: x[key],
        lambda a, key: a[key],
        dtypes=MOVE,
        shapes=shapes(min_dims=2, min_side=1).map(lambda s: (s,)),
        params=_two_arrays_key,
        covers=("gather", "transpose", "reshape"),
    ),
    OpRecord(
        "getitem_mask",
        lambda F, x: x[x > 0],
        lambda a: a[a > 0],
        dtypes=FLOATS + SIGNED,
        covers=("gather", "greater"),
    ),
    OpRecord(
        "setitem_basic",
        lambda F, x, key: _set(F, x, key, 7),
        lambda a, key: _set_np(a, key, 7),
        dtypes=MOVE,
        params=_basic_key,
        covers=("raster", "broadcast_to"),
    ),
    OpRecord(
        "setitem_basic_array",
        lambda F, x, key: _set(F, x, key, x[key] * 2),
        lambda a, key: _set_np(a, key, a[key] * 2),
        dtypes=NUMERIC,
        params=_basic_key,
        covers=("raster", "multiply"),
    ),
    OpRecord(
        "setitem_int_array",
        lambda F, x, key: _set(F, x, key, 1),
        lambda a, key: _set_np(a, key, 1),
        dtypes=MOVE,
        shapes=shapes(min_dims=1, min_side=1).map(lambda s: (s,)),
        params=_int_array_key,
        covers=("scatter_nd",),
    ),
    OpRecord(
        "setitem_mask",
        lambda F, x: _set(F, x, x > 0, 0),
        lambda a: _set_np(a, a > 0, 0),
        dtypes=FLOATS + SIGNED,
        covers=("where",),
    ),
    OpRecord(
        "setitem_mask_values",
        lambda F, x: _set(F, x, x > 0, x[x > 0] + 1),
        lambda a: _set_np(a, a > 0, a[a > 0] + 1),
        dtypes=FLOATS + SIGNED,
        covers=("scatter_nd",),
    ),
]


def _set(F, x, key, value):
    y = x.reshape(x.shape)  # another handle: rebinding it must leave x alone
    old = y
    y[key] = value
    assert y is old  # the handle is rebound, not replaced
    return [y, x]


def _set_np(a, key, value):
    b = a.copy()
    b[key] = value
    return [b, a]
