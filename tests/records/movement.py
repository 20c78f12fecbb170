"""Records for the movement family: reshape, transpose, slicing, broadcasting, joining, splitting,
padding, tiling, flipping, rolling and the raster primitive itself."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.op_records import ALL, INTS, OpRecord, broadcast_shapes, shapes

MOVE = ALL  # movement ops copy bytes: every dtype


def _one(**kw):
    return shapes(**kw).map(lambda s: (s,))


def _axis(nd, allow_none=False):
    if nd == 0:
        return st.none() if allow_none else st.just(0)
    ax = st.integers(-nd, nd - 1)
    return st.one_of(st.none(), ax) if allow_none else ax


def _axes_subset(nd):
    """A tuple of distinct axes (possibly negative) of an nd-d array."""
    return st.lists(st.integers(0, max(nd - 1, 0)), unique=True, max_size=nd).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - nd]) for a in axes])
    )


# ---- reshape family --------------------------------------------------------------------


def _new_shapes(shp):
    s = shp[0]
    n = int(np.prod(s))
    cands = [(-1,), tuple(reversed(s)), s + (1,), (1,) + s, (n,)]
    if n and len(s) >= 2:
        cands.append((s[0], -1))
        cands.append((-1, s[-1]))
    if n and len(s) >= 1 and n % 2 == 0:
        cands.append((2, -1, 1))
    return st.fixed_dictionaries({"shape": st.sampled_from(cands)})


def _mnn_zero_shapes(shp):
    s = shp[0]
    return st.fixed_dictionaries(
        {"shape": st.sampled_from([(0, -1), (0,) + s[1:], (0, 0, -1)[: len(s) + 1]])}
    )


def _mnn_zero_ref(a, shape):
    spec = [a.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return a.reshape(spec)


RECORDS = [
    OpRecord(
        "reshape",
        lambda F, x, shape: F.reshape(x, shape),
        lambda a, shape: a.reshape(shape),
        dtypes=MOVE,
        params=_new_shapes,
        covers=("reshape",),
    ),
    OpRecord(
        "reshape_method",
        lambda F, x, shape: x.reshape(*shape),
        lambda a, shape: a.reshape(shape),
        dtypes=MOVE,
        params=_new_shapes,
        covers=("reshape",),
    ),
    OpRecord(
        "reshape_mnn_zero",
        lambda F, x, shape: F.reshape(x, list(shape)),
        _mnn_zero_ref,
        dtypes=MOVE,
        shapes=_one(min_dims=2, min_side=1),
        params=_mnn_zero_shapes,
        covers=("reshape",),
    ),
    OpRecord(
        "reshape_after_op",
        lambda F, x: F.reshape(x * 2, [-1]),
        lambda a: (a * 2).reshape(-1),
        covers=("reshape", "multiply"),
    ),
    OpRecord("ravel", lambda F, x: F.ravel(x), np.ravel, dtypes=MOVE, covers=("reshape",)),
    OpRecord(
        "flatten_method", lambda F, x: x.flatten(), lambda a: a.flatten(), dtypes=MOVE, covers=("reshape",)
    ),
    OpRecord(
        "expand_dims",
        lambda F, x, axis: F.expand_dims(x, axis),
        lambda a, axis: np.expand_dims(a, axis),
        dtypes=MOVE,
        params=lambda shp: st.fixed_dictionaries(
            {"axis": st.one_of(st.integers(-len(shp[0]) - 1, len(shp[0])), st.just((0, -1)))}
        ),
        covers=("reshape",),
    ),
    OpRecord(
        "unsqueeze", lambda F, x: F.unsqueeze(x, [0]), lambda a: a[None], dtypes=MOVE, covers=("reshape",)
    ),
    OpRecord(
        "squeeze",
        lambda F, x, axis: F.squeeze(x, axis),
        lambda a, axis: np.squeeze(a, axis),
        dtypes=MOVE,
        shapes=st.lists(st.sampled_from([1, 1, 2, 3, 0]), max_size=4).map(lambda s: (tuple(s),)),
        params=lambda shp: st.fixed_dictionaries(
            {"axis": st.one_of(st.none(), st.tuples(*[st.just(i) for i, d in enumerate(shp[0]) if d == 1]))}
        ),
        covers=("reshape",),
    ),
    OpRecord(
        "squeeze_mnn_all",
        lambda F, x: F.squeeze(x, []),
        np.squeeze,
        dtypes=MOVE,
        shapes=st.lists(st.sampled_from([1, 2, 3]), max_size=4).map(lambda s: (tuple(s),)),
        covers=("reshape",),
    ),
    OpRecord("atleast_3d", lambda F, x: F.atleast_3d(x), np.atleast_3d, dtypes=MOVE, covers=("reshape",)),
]

# ---- transposes ------------------------------------------------------------------------


def _perm(shp):
    nd = len(shp[0])
    return st.fixed_dictionaries({"axes": st.one_of(st.none(), st.permutations(list(range(nd))).map(tuple))})


RECORDS += [
    OpRecord(
        "transpose",
        lambda F, x, axes: F.transpose(x, axes),
        lambda a, axes: np.transpose(a, axes),
        dtypes=MOVE,
        params=_perm,
        covers=("transpose",),
    ),
    OpRecord(
        "transpose_large",
        lambda F, x, axes: F.transpose(x, axes),
        lambda a, axes: np.transpose(a, axes),
        dtypes=("float32", "float64", "int8", "float16"),
        shapes=st.tuples(st.lists(st.integers(1, 40), min_size=2, max_size=4).map(tuple)),
        params=_perm,
        covers=("transpose",),
    ),
    OpRecord(
        "transpose_method",
        lambda F, x, axes: x.transpose(*(axes or ())),
        lambda a, axes: a.transpose(*(axes or ())),
        dtypes=MOVE,
        params=_perm,
        covers=("transpose",),
    ),
    OpRecord("T", lambda F, x: x.T, lambda a: a.T, dtypes=MOVE, covers=("transpose",)),
    OpRecord(
        "permute_dims",
        lambda F, x, axes: F.permute_dims(x, axes),
        lambda a, axes: np.transpose(a, axes),
        params=_perm,
        covers=("transpose",),
    ),
    OpRecord(
        "swapaxes",
        lambda F, x, a1, a2: F.swapaxes(x, a1, a2),
        lambda a, a1, a2: np.swapaxes(a, a1, a2),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        params=lambda shp: st.fixed_dictionaries({"a1": _axis(len(shp[0])), "a2": _axis(len(shp[0]))}),
        covers=("transpose",),
    ),
    OpRecord(
        "moveaxis",
        lambda F, x, src, dst: F.moveaxis(x, src, dst),
        lambda a, src, dst: np.moveaxis(a, src, dst),
        dtypes=MOVE,
        shapes=_one(min_dims=2),
        params=lambda shp: st.fixed_dictionaries(
            {"src": st.just((0, -1)), "dst": st.sampled_from([(1, 0), (-1, 0)])}
        ),
        covers=("transpose",),
    ),
]

# ---- broadcasting ----------------------------------------------------------------------


def _bcast_target(shp):
    s = shp[0]
    dims = [st.just(d) if d != 1 else st.integers(0, 3) for d in s]
    return st.fixed_dictionaries(
        {
            "shape": st.tuples(st.lists(st.integers(0, 3), max_size=2).map(tuple), st.tuples(*dims)).map(
                lambda t: t[0] + t[1]
            )
        }
    )


RECORDS += [
    OpRecord(
        "broadcast_to",
        lambda F, x, shape: F.broadcast_to(x, shape),
        lambda a, shape: np.broadcast_to(a, shape),
        dtypes=MOVE,
        params=_bcast_target,
        covers=("broadcast_to",),
    ),
    OpRecord(
        "broadcast_like",
        lambda F, x, like: F.broadcast_like(x, like),
        lambda a, like: np.broadcast_to(a, like.shape),
        nargs=2,
        dtypes=MOVE,
        shapes=broadcast_shapes(2).map(lambda s: (s[0], np.broadcast_shapes(*s))),
        covers=("broadcast_like",),
    ),
    OpRecord(
        "broadcast_arrays",
        lambda F, x, y: F.broadcast_arrays(x, y),
        lambda a, b: np.broadcast_arrays(a, b),
        nargs=2,
        dtypes=MOVE,
        shapes=broadcast_shapes(2),
        covers=("broadcast_to",),
    ),
]

# ---- joining -----------------------------------------------------------------------------


@st.composite
def _concat_shapes(draw, n=None):
    base = draw(shapes(min_dims=1))
    ax = draw(st.integers(0, len(base) - 1))
    k = n or draw(st.integers(1, 3))
    out = []
    for _ in range(k):
        s = list(base)
        s[ax] = draw(st.integers(0, 4))
        out.append(tuple(s))
    return tuple(out)


def _concat_axis(shp):
    s0 = shp[0]
    cands = [i for i in range(len(s0)) if all(s[:i] + s[i + 1 :] == s0[:i] + s0[i + 1 :] for s in shp)]
    return st.fixed_dictionaries({"axis": st.sampled_from(cands + [c - len(s0) for c in cands])})


RECORDS += [
    OpRecord(
        "concatenate",
        lambda F, x, y, axis: F.concatenate([x, y], axis),
        lambda a, b, axis: np.concatenate([a, b], axis),
        nargs=2,
        dtypes=MOVE,
        shapes=_concat_shapes(2),
        params=_concat_axis,
        covers=("concat",),
    ),
    OpRecord(
        "concatenate3",
        lambda F, x, y, z, axis: F.concat([x, y, z], axis),
        lambda a, b, c, axis: np.concatenate([a, b, c], axis),
        nargs=3,
        dtypes=MOVE,
        shapes=_concat_shapes(3),
        params=_concat_axis,
        covers=("concat",),
    ),
    OpRecord(
        "concatenate_none",
        lambda F, x, y: F.concatenate([x, y], axis=None),
        lambda a, b: np.concatenate([a, b], axis=None),
        nargs=2,
        dtypes=MOVE,
        shapes=st.tuples(shapes(), shapes()),
        covers=("concat", "reshape"),
    ),
    OpRecord(
        "concatenate_promote",
        lambda F, x: F.concatenate([x, x.astype("float32")], axis=-1),
        lambda a: np.concatenate([a, a.astype(np.float32)], axis=-1),
        dtypes=INTS + ("bool", "float64"),
        shapes=_one(min_dims=1),
        covers=("concat", "cast"),
        result_dtype=lambda dtype, params: np.promote_types(dtype, np.float32).name,
    ),
    OpRecord(
        "stack",
        lambda F, x, y, axis: F.stack([x, y], axis),
        lambda a, b, axis: np.stack([a, b], axis),
        nargs=2,
        dtypes=MOVE,
        params=lambda shp: st.fixed_dictionaries({"axis": st.integers(-len(shp[0]) - 1, len(shp[0]))}),
        covers=("concat", "reshape"),
    ),
    OpRecord(
        "hstack",
        lambda F, x, y: F.hstack([x, y]),
        lambda a, b: np.hstack([a, b]),
        nargs=2,
        shapes=st.sampled_from([((3,), (2,)), ((2, 3), (2, 1)), ((), ()), ((2, 0, 1), (2, 2, 1))]),
        covers=("concat",),
    ),
    OpRecord(
        "vstack",
        lambda F, x, y: F.vstack([x, y]),
        lambda a, b: np.vstack([a, b]),
        nargs=2,
        shapes=st.sampled_from([((3,), (3,)), ((2, 3), (1, 3)), ((), ()), ((0, 2), (3, 2))]),
        covers=("concat",),
    ),
    OpRecord(
        "dstack",
        lambda F, x, y: F.dstack([x, y]),
        lambda a, b: np.dstack([a, b]),
        nargs=2,
        shapes=st.sampled_from([((3,), (3,)), ((2, 3), (2, 3)), ((2, 3, 1), (2, 3, 2))]),
        covers=("concat",),
    ),
    OpRecord(
        "column_stack",
        lambda F, x, y: F.column_stack([x, y]),
        lambda a, b: np.column_stack([a, b]),
        nargs=2,
        shapes=st.sampled_from([((3,), (3,)), ((2, 3), (2,))]),
        covers=("concat",),
    ),
]

# ---- splitting ---------------------------------------------------------------------------


def _split_params(shp):
    s = shp[0]
    if not s:
        return st.nothing()
    ax = st.integers(-len(s), len(s) - 1)

    def sections(axis):
        n = s[axis]
        divs = [k for k in range(1, 6) if n % k == 0] or [1]
        idx = st.lists(st.integers(-n - 2, n + 2), max_size=3)
        return st.fixed_dictionaries({"axis": st.just(axis), "ios": st.one_of(st.sampled_from(divs), idx)})

    return ax.flatmap(sections)


RECORDS += [
    OpRecord(
        "split",
        lambda F, x, ios, axis: F.split(x, ios, axis),
        lambda a, ios, axis: np.split(a, ios, axis),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        params=_split_params,
        covers=("slice",),
    ),
    OpRecord(
        "array_split",
        lambda F, x, k, axis: F.array_split(x, k, axis),
        lambda a, k, axis: np.array_split(a, k, axis),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        params=lambda shp: st.fixed_dictionaries({"k": st.integers(1, 6), "axis": _axis(len(shp[0]))}),
        covers=("slice",),
    ),
    OpRecord(
        "split_mnn_sizes",
        lambda F, x: F.split(x, size_splits=[1, x.shape[0] - 1], axis=0),
        lambda a: np.split(a, [1]),
        dtypes=MOVE,
        shapes=_one(min_dims=1, min_side=1),
        covers=("slice",),
    ),
    OpRecord(
        "unstack",
        lambda F, x, axis: F.unstack(x, axis),
        lambda a, axis: list(np.moveaxis(a, axis, 0)),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        params=lambda shp: st.fixed_dictionaries({"axis": _axis(len(shp[0]))}),
        covers=("slice", "reshape"),
    ),
    OpRecord(
        "iterate",
        lambda F, x: list(x),
        lambda a: list(a),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        covers=("slice", "reshape"),
    ),
]

# ---- tile / repeat -------------------------------------------------------------------------


RECORDS += [
    OpRecord(
        "tile",
        lambda F, x, reps: F.tile(x, reps),
        lambda a, reps: np.tile(a, reps),
        dtypes=MOVE,
        shapes=_one(max_dims=3, max_side=4),
        params=lambda shp: st.fixed_dictionaries(
            {"reps": st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=4).map(tuple))}
        ),
        covers=("tile",),
    ),
    OpRecord(
        "repeat",
        lambda F, x, r, axis: F.repeat(x, r, axis),
        lambda a, r, axis: np.repeat(a, r, axis),
        dtypes=MOVE,
        params=lambda shp: st.fixed_dictionaries(
            {"r": st.integers(0, 3), "axis": _axis(len(shp[0]), allow_none=True)}
        ),
        covers=("broadcast_to", "reshape"),
    ),
    OpRecord(
        "repeat_counts",
        lambda F, x, r: F.repeat(x, F.array(np.array(r)), axis=0),
        lambda a, r: np.repeat(a, r, axis=0),
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        params=lambda shp: st.fixed_dictionaries(
            {"r": st.lists(st.integers(0, 3), min_size=shp[0][0], max_size=shp[0][0])}
        ),
        covers=("gather",),
    ),
    OpRecord(
        "repeat_method",
        lambda F, x: x.repeat(2),
        lambda a: a.repeat(2),
        dtypes=MOVE,
        covers=("broadcast_to", "reshape"),
    ),
]

# ---- padding ----------------------------------------------------------------------------------


def _pad_params(modes):
    def params(shp):
        nd = len(shp[0])
        width = (
            st.one_of(
                st.integers(0, 3),
                st.tuples(st.integers(0, 3), st.integers(0, 3)),
                st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=nd, max_size=nd).map(
                    tuple
                ),
            )
            if nd
            else st.integers(0, 3)
        )
        return st.fixed_dictionaries({"pw": width, "mode": st.sampled_from(modes)})

    return params


RECORDS += [
    OpRecord(
        "pad_constant",
        lambda F, x, pw, mode: F.pad(x, pw, mode, constant_values=2),
        lambda a, pw, mode: np.pad(a, pw, mode, constant_values=2),
        dtypes=MOVE,
        params=_pad_params(["constant"]),
        covers=("pad",),
    ),
    OpRecord(
        "pad_mirror",
        lambda F, x, pw, mode: F.pad(x, pw, mode),
        lambda a, pw, mode: np.pad(a, pw, mode),
        dtypes=MOVE,
        shapes=_one(min_side=1),
        params=_pad_params(["reflect", "symmetric", "edge", "wrap"]),
        covers=("pad",),
    ),
    OpRecord(
        "pad_constant_pairs",
        lambda F, x: F.pad(x, 1, constant_values=((1, 2), (3, 4))),
        lambda a: np.pad(a, 1, constant_values=((1, 2), (3, 4))),
        dtypes=INTS + ("float32",),
        shapes=_one(min_dims=2, max_dims=2),
        covers=("pad",),
    ),
    OpRecord(
        "pad_mnn",
        lambda F, x: F.pad(x, [[1, 0]] * x.ndim, "SYMMETRIC"),
        lambda a: np.pad(a, [(1, 0)] * a.ndim, "symmetric"),
        shapes=_one(min_dims=1, min_side=1),
        covers=("pad",),
    ),
]

# ---- flip / roll ---------------------------------------------------------------------------------

RECORDS += [
    OpRecord(
        "flip",
        lambda F, x, axis: F.flip(x, axis),
        lambda a, axis: np.flip(a, axis),
        dtypes=MOVE,
        params=lambda shp: st.fixed_dictionaries({"axis": st.one_of(st.none(), _axes_subset(len(shp[0])))}),
        covers=("flip",),
    ),
    OpRecord(
        "reverse",
        lambda F, x: F.reverse(x, 0),
        lambda a: a[::-1],
        dtypes=MOVE,
        shapes=_one(min_dims=1),
        covers=("flip",),
    ),
    OpRecord(
        "fliplr", lambda F, x: F.fliplr(x), np.fliplr, dtypes=MOVE, shapes=_one(min_dims=2), covers=("flip",)
    ),
    OpRecord(
        "flipud", lambda F, x: F.flipud(x), np.flipud, dtypes=MOVE, shapes=_one(min_dims=1), covers=("flip",)
    ),
    OpRecord(
        "roll",
        lambda F, x, shift, axis: F.roll(x, shift, axis),
        lambda a, shift, axis: np.roll(a, shift, axis),
        dtypes=MOVE,
        params=lambda shp: st.fixed_dictionaries(
            {
                "shift": st.integers(-7, 7),
                "axis": st.one_of(st.none(), _axes_subset(len(shp[0])).filter(bool)) if shp[0] else st.none(),
            }
        ),
        covers=("raster",),
    ),
    OpRecord(
        "roll_multi",
        lambda F, x: F.roll(x, (1, -2, 3), (0, 1, 0)),
        lambda a: np.roll(a, (1, -2, 3), (0, 1, 0)),
        dtypes=MOVE,
        shapes=_one(min_dims=2),
        covers=("raster",),
    ),
]

# ---- MNN slice and the raster primitive ----------------------------------------------------------


def _box(shp):
    s = shp[0]
    starts = st.tuples(*[st.integers(0, d) for d in s])
    return starts.flatmap(
        lambda b: st.fixed_dictionaries(
            {
                "starts": st.just(b),
                "sizes": st.tuples(*[st.one_of(st.just(-1), st.integers(0, d - bb)) for bb, d in zip(b, s)]),
            }
        )
    )


def _box_ref(a, starts, sizes):
    return a[tuple(slice(b, None if z == -1 else b + z) for b, z in zip(starts, sizes))]


def _raster_transpose(F, x):
    nd = x.ndim
    if nd == 0:
        return F.raster([x], [0, 0, 0, 0], [])
    src = [1] * nd
    for i in range(nd - 2, -1, -1):
        src[i] = src[i + 1] * x.shape[i + 1]
    out_shape = list(x.shape[::-1])
    dst = [1] * nd
    for i in range(nd - 2, -1, -1):
        dst[i] = dst[i + 1] * out_shape[i + 1]
    return F.raster([x], [0, nd, 0, 0] + out_shape + src[::-1] + dst, out_shape)


def _raster_mirror(F, x):
    """[x, reversed x, zeros]: the second half copied from the destination itself."""
    n = x.size
    flat = F.ravel(x)
    regions = [0, 1, 0, 0, n, 1, 1]
    if n:
        regions += [-1, 1, n - 1, n, n, -1, 1]
    return F.raster([flat], regions, [2 * n + 2])


RECORDS += [
    OpRecord(
        "slice_mnn",
        lambda F, x, starts, sizes: F.slice(x, starts, sizes),
        _box_ref,
        dtypes=MOVE,
        params=_box,
        covers=("slice",),
    ),
    OpRecord("raster_transpose", _raster_transpose, lambda a: a.T, dtypes=MOVE, covers=("raster",)),
    OpRecord(
        "raster_self",
        _raster_mirror,
        lambda a: np.concatenate([a.reshape(-1), a.reshape(-1)[::-1], np.zeros(2, a.dtype)]),
        dtypes=MOVE,
        covers=("raster", "reshape"),
    ),
]


# ---- random regions against a sequential reference ---------------------------------------------


@st.composite
def _random_regions(draw, n):
    m = draw(st.integers(1, 400))
    regions = []
    for _ in range(draw(st.integers(1, 3))):
        src = draw(st.sampled_from([0, 0, -1])) if n else -1
        nd = draw(st.integers(0, 3))
        if draw(st.booleans()) and nd >= 2:  # transpose-like: unit source stride inside, unit dst stride last
            size = [draw(st.integers(1, 3)) for _ in range(nd - 2)] + [
                draw(st.integers(8, 11)),
                draw(st.integers(8, 11)),
            ]
            ss = [draw(st.integers(-9, 9)) for _ in range(nd - 2)] + [
                draw(st.sampled_from([1, -1])),
                draw(st.sampled_from([-12, 11, 12])),
            ]
            ds = [draw(st.integers(-40, 40)) for _ in range(nd - 2)] + [
                draw(st.sampled_from([12, -12, 11])),
                1,
            ]
        else:
            size = [draw(st.integers(1, 6)) for _ in range(nd)]
            ss = [draw(st.integers(-7, 7)) for _ in range(nd)]
            ds = [draw(st.integers(-8, 8)) for _ in range(nd)]
        src_n = n if src == 0 else m
        slo = sum(min(0, (z - 1) * t) for z, t in zip(size, ss))
        shi = sum(max(0, (z - 1) * t) for z, t in zip(size, ss))
        dlo = sum(min(0, (z - 1) * t) for z, t in zip(size, ds))
        dhi = sum(max(0, (z - 1) * t) for z, t in zip(size, ds))
        if -slo > src_n - 1 - shi or -dlo > m - 1 - dhi:
            continue  # does not fit: skip this region
        so = draw(st.integers(-slo, src_n - 1 - shi))
        do = draw(st.integers(-dlo, m - 1 - dhi))
        regions += [src, nd, so, do] + size + ss + ds
    return {"regions": regions, "m": m}


def _raster_ref(a, regions, m):
    src0 = a.reshape(-1)
    out = np.zeros(m, a.dtype)
    i = 0
    while i < len(regions):
        src, nd, so, do = regions[i : i + 4]
        size = regions[i + 4 : i + 4 + nd]
        ss = regions[i + 4 + nd : i + 4 + 2 * nd]
        ds = regions[i + 4 + 2 * nd : i + 4 + 3 * nd]
        for idx in np.ndindex(*size):
            s = so + sum(k * t for k, t in zip(idx, ss))
            d = do + sum(k * t for k, t in zip(idx, ds))
            out[d] = (src0 if src == 0 else out)[s]
        i += 4 + 3 * nd
    return out


RECORDS += [
    OpRecord(
        "raster_random",
        lambda F, x, regions, m: F.raster([F.ravel(x)], regions, [m]),
        _raster_ref,
        dtypes=MOVE,
        shapes=st.integers(0, 400).map(lambda n: ((n,),)),
        params=lambda shp: _random_regions(int(np.prod(shp[0]))),
        covers=("raster", "reshape"),
    ),
]
