"""Records for linear algebra: matmul (all dtypes, 1-d, batch broadcasting, transposes, size-0
dims, the packed GEMM sizes), ``@``, dot, vdot, inner, outer, tensordot, einsum, trace, linear."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.op_records import FLOATS, HALFS, INTS, NUMERIC, OpRecord

# Float sums over K terms of values in [-3, 3] differ from numpy's by rounding order only.
_TOL = dict(rtol=1e-5, atol=1e-4)


def _t(x: np.ndarray, flag: bool) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if flag and x.ndim >= 2 else x


@st.composite
def _matmul_shapes(draw, ta: bool = False, tb: bool = False, max_side: int = 4, max_batch: int = 3):
    """Stored shapes of (a, b) for matmul with the given transposes: 1-d or n-d operands,
    broadcasting batch dims, size-0 dims."""
    m, k, n = (draw(st.integers(0, max_side)) for _ in range(3))
    a_vec, b_vec = draw(st.booleans()) and draw(st.booleans()), draw(st.booleans()) and draw(st.booleans())
    nb = draw(st.integers(0, 2))
    batch = [
        draw(st.integers(0 if draw(st.booleans()) and draw(st.booleans()) else 1, max_batch))
        for _ in range(nb)
    ]

    def side(vec, r, c, t):
        if vec:
            return (k,)
        drop = draw(st.integers(0, nb))
        bs = tuple(d if draw(st.booleans()) else 1 for d in batch[drop:])
        return bs + ((c, r) if t else (r, c))

    return side(a_vec, m, k, ta), side(b_vec, k, n, tb)


def _matmul_record(name, ta, tb, dtypes, **kw):
    return OpRecord(
        name,
        lambda F, a, b, _ta=ta, _tb=tb: F.matmul(a, b, transposeA=_ta, transposeB=_tb),
        lambda a, b, _ta=ta, _tb=tb: np.matmul(_t(a, _ta), _t(b, _tb)),
        nargs=2,
        dtypes=dtypes,
        shapes=_matmul_shapes(ta, tb),
        covers=("matmul",),
        **{**_TOL, **kw},
    )


def _big_values(rng, shp, dtype, params):
    return [rng.uniform(-1, 1, s).astype("float32" if dtype == "bfloat16" else dtype) for s in shp]


@st.composite
def _gemm_shapes(draw, ta: bool, tb: bool):
    """Sizes past the small-product cutoff: the packed GEMM and the one-row / one-column paths."""
    dims = st.one_of(st.integers(1, 3), st.integers(13, 70))
    m, n, k = draw(dims), draw(dims), draw(st.integers(1, 90))
    return ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))


RECORDS = [
    _matmul_record("matmul", False, False, NUMERIC + ("bool",) + HALFS),
    _matmul_record("matmul_transpose_a", True, False, FLOATS + INTS),
    _matmul_record("matmul_transpose_b", False, True, FLOATS + INTS),
    _matmul_record("matmul_transpose_ab", True, True, FLOATS + ("int32",)),
    OpRecord(
        "matmul_operator",
        lambda F, a, b: a @ b,
        np.matmul,
        nargs=2,
        dtypes=FLOATS + ("int64",),
        shapes=_matmul_shapes(),
        covers=("matmul",),
        **_TOL,
    ),
    OpRecord(
        "matmul_mixed_dtypes",
        lambda F, a, b: F.matmul(a, b.astype("int32")),
        lambda a, b: np.matmul(a, b.astype(np.int32)),
        nargs=2,
        dtypes=("int8", "float32", "float64"),
        shapes=_matmul_shapes(),
        covers=("matmul", "cast"),
        **_TOL,
        result_dtype=lambda dtype, params: np.promote_types(dtype, np.int32).name,
    ),
    OpRecord(
        "matmul_batched_large",
        lambda F, a, b: F.matmul(a, b),
        np.matmul,
        nargs=2,
        dtypes=FLOATS,
        shapes=st.tuples(st.integers(1, 3), *[st.integers(1, 40)] * 3).map(
            lambda t: ((t[0], t[1], t[3]), (t[0], t[3], t[2]))
        ),
        values=_big_values,
        covers=("matmul",),
        rtol=1e-5,
        atol=1e-4,
    ),
]
for _ta in (False, True):
    for _tb in (False, True):
        RECORDS.append(
            OpRecord(
                f"gemm_sizes_{'t' if _ta else 'n'}{'t' if _tb else 'n'}",
                lambda F, a, b, _ta=_ta, _tb=_tb: F.matmul(a, b, transpose_a=_ta, transpose_b=_tb),
                lambda a, b, _ta=_ta, _tb=_tb: np.matmul(_t(a, _ta), _t(b, _tb)),
                nargs=2,
                dtypes=FLOATS,
                shapes=_gemm_shapes(_ta, _tb),
                values=_big_values,
                covers=("matmul",),
                rtol=1e-5,
                atol=1e-4,
            )
        )


# ---- dot family -------------------------------------------------------------------------------


@st.composite
def _dot_shapes(draw):
    k = draw(st.integers(0, 4))
    na, nb = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    a = tuple(draw(st.integers(0, 3)) for _ in range(max(na - 1, 0))) + ((k,) if na else ())
    if nb >= 2:
        b = tuple(draw(st.integers(0, 3)) for _ in range(nb - 2)) + (k, draw(st.integers(0, 3)))
    else:
        b = (k,) * nb
    return a, b


@st.composite
def _inner_shapes(draw):
    k = draw(st.integers(0, 4))
    na, nb = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    a = tuple(draw(st.integers(0, 3)) for _ in range(max(na - 1, 0))) + ((k,) if na else ())
    b = tuple(draw(st.integers(0, 3)) for _ in range(max(nb - 1, 0))) + ((k,) if nb else ())
    return a, b


@st.composite
def _tensordot_case(draw):
    """Shapes plus an axes spec (an int or a pair of lists, some axes negative)."""
    nshared = draw(st.integers(0, 2))
    shared = [draw(st.integers(0, 3)) for _ in range(nshared)]
    fa = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))]
    fb = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        return (tuple(fa + shared), tuple(shared + fb)), nshared
    pa = draw(st.permutations(range(len(fa) + nshared)))
    pb = draw(st.permutations(range(len(fb) + nshared)))
    sa, sb = fa + shared, shared + fb
    a_shape = tuple(sa[i] for i in pa)
    b_shape = tuple(sb[i] for i in pb)
    ax_a = [list(pa).index(len(fa) + i) for i in range(nshared)]
    ax_b = [list(pb).index(i) for i in range(nshared)]
    if draw(st.booleans()):
        ax_a = [x - len(a_shape) for x in ax_a]
    return (a_shape, b_shape), (ax_a, ax_b)


_td_cases = _tensordot_case()


@st.composite
def _td_axes(draw, shp):
    """A valid tensordot ``axes`` for the drawn shapes: an int (suffix of a against prefix of b)
    or a pair of lists of matching axes (some negative)."""
    a, b = shp
    ints = [n for n in range(min(len(a), len(b)) + 1) if a[len(a) - n :] == b[:n]]
    if draw(st.booleans()):
        return {"axes": draw(st.sampled_from(ints))}
    ax_a, ax_b = [], []
    for i in draw(st.permutations(range(len(a)))):
        free = [j for j in range(len(b)) if b[j] == a[i] and j not in ax_b]
        if free and draw(st.booleans()):
            ax_a.append(i - len(a) if draw(st.booleans()) else i)
            ax_b.append(draw(st.sampled_from(free)))
    return {"axes": (ax_a, ax_b)}


RECORDS += [
    OpRecord(
        "dot",
        lambda F, a, b: F.dot(a, b),
        np.dot,
        nargs=2,
        dtypes=FLOATS + ("int32", "int64"),
        shapes=_dot_shapes(),
        covers=("matmul", "multiply", "reshape", "transpose"),
        **_TOL,
    ),
    OpRecord(
        "vdot",
        lambda F, a, b: F.vdot(a, b),
        np.vdot,
        nargs=2,
        dtypes=FLOATS + ("int64",),
        shapes=st.tuples(st.integers(0, 12), st.sampled_from([(1,), (2,), (3,)])).map(
            lambda t: ((t[0] * t[1][0],), (t[1][0], t[0]))
        ),
        covers=("matmul", "reshape"),
        **_TOL,
    ),
    OpRecord(
        "inner",
        lambda F, a, b: F.inner(a, b),
        np.inner,
        nargs=2,
        dtypes=FLOATS + ("int32",),
        shapes=_inner_shapes(),
        covers=("matmul", "multiply", "reshape", "transpose"),
        **_TOL,
    ),
    OpRecord(
        "outer",
        lambda F, a, b: F.outer(a, b),
        np.outer,
        nargs=2,
        dtypes=NUMERIC,
        shapes=st.tuples(
            st.lists(st.integers(0, 3), max_size=2).map(tuple),
            st.lists(st.integers(0, 3), max_size=2).map(tuple),
        ),
        covers=("multiply", "reshape"),
    ),
    OpRecord(
        "tensordot",
        lambda F, a, b, axes: F.tensordot(a, b, axes),
        lambda a, b, axes: np.tensordot(a, b, axes),
        nargs=2,
        dtypes=FLOATS + ("int64",),
        shapes=_td_cases.map(lambda c: c[0]),
        params=_td_axes,
        covers=("matmul", "reshape", "transpose"),
        **_TOL,
    ),
    OpRecord(
        "trace",
        lambda F, a, offset, axes: F.trace(a, offset, *axes),
        lambda a, offset, axes: np.trace(a, offset, *axes),
        dtypes=FLOATS + ("int32", "int64"),
        shapes=st.lists(st.integers(0, 4), min_size=2, max_size=4).map(lambda s: (tuple(s),)),
        params=lambda shp: st.fixed_dictionaries(
            {
                "offset": st.integers(-2, 2),
                "axes": st.permutations(range(-len(shp[0]), 0)).map(lambda p: tuple(p[:2])),
            }
        ),
        covers=("multiply", "reduce_sum"),
        **_TOL,
    ),
    OpRecord(
        "linear",
        lambda F, x, w, b: F.linear(x, w, b),
        lambda x, w, b: x @ w.T + b,
        nargs=3,
        dtypes=FLOATS,
        shapes=st.tuples(st.lists(st.integers(0, 3), max_size=2), *[st.integers(0, 4)] * 2).map(
            lambda t: (tuple(t[0]) + (t[1],), (t[2], t[1]), (t[2],))
        ),
        covers=("matmul", "add"),
        **_TOL,
    ),
]


# ---- einsum ------------------------------------------------------------------------------------

_EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("ij->ji", [(2, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i,i", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ijk,jil->kl", [(2, 3, 4), (3, 2, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("iij->j", [(3, 3, 2)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("...i,...i->...", [(2, 3), (3,)]),
    ("abc,cd->abd", [(2, 0, 3), (3, 4)]),
    ("ij,jk->", [(2, 3), (3, 4)]),
    ("i,i->i", [(3,), (1,)]),
    ("ba,ac", [(2, 3), (3, 4)]),
    ("...", [(2, 3)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("iji->j", [(2, 3, 2)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i->", [(5,)]),
]

RECORDS += [
    OpRecord(
        f"einsum[{sub}]",
        lambda F, *ops, _s=sub: F.einsum(_s, *ops),
        lambda *ops, _s=sub: np.einsum(_s, *ops),
        nargs=len(shapes),
        dtypes=FLOATS,
        shapes=st.just(tuple(shapes)),
        **_TOL,
        covers=("matmul", "reshape", "transpose", "reduce_sum", "multiply"),
    )
    for sub, shapes in _EINSUM
]
