"""NumPy indexing on Vars (``x[key]``, ``x[key] = v``) against numpy, eagerly and lazily, plus the
error cases of the movement and index families (they must raise, never crash)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mnn_expr as F
from tests.op_records import shapes

MODES = ["eager", "lazy"]


# ---- random keys -------------------------------------------------------------------------


@st.composite
def index_cases(draw, allow_vars: bool = True):
    """(shape, key builder): the builder makes the key from numpy parts, turning some index
    arrays and masks into Vars so both static and data-dependent paths run."""
    shape = draw(shapes(min_dims=0, max_dims=4, max_side=4))
    nd = len(shape)
    kinds: list = []
    consumed, ellipsis = 0, False
    for _ in range(draw(st.integers(0, 6))):
        options = ["none", "bool"] + (["ellipsis"] if not ellipsis else [])
        if consumed < nd:
            options += ["int", "slice", "slice", "array", "array", "mask"]
        k = draw(st.sampled_from(options))
        if k == "mask":
            m = draw(st.integers(1, nd - consumed))
            kinds.append(("mask", m))
            consumed += m
        else:
            kinds.append((k, 0))
            consumed += k in ("int", "slice", "array")
            ellipsis |= k == "ellipsis"
    # Which dims each item indexes: items after the ellipsis index the trailing dims.
    dims: list = []
    if ellipsis:
        cut = [k for k, _ in kinds].index("ellipsis")
        before = sum(m if k == "mask" else k in ("int", "slice", "array") for k, m in kinds[:cut])
        d = 0
        for i, (k, m) in enumerate(kinds):
            if i == cut:
                d = nd - (consumed - before)
            dims.append(d)
            d += m if k == "mask" else int(k in ("int", "slice", "array"))
    else:
        d = 0
        for k, m in kinds:
            dims.append(d)
            d += m if k == "mask" else int(k in ("int", "slice", "array"))
    bshape = draw(shapes(max_dims=2, max_side=3))
    parts = []
    for (k, m), d in zip(kinds, dims):
        if k == "none":
            parts.append(None)
        elif k == "ellipsis":
            parts.append(Ellipsis)
        elif k == "bool":
            parts.append(draw(st.booleans()))
        elif k == "int":
            n = shape[d]
            parts.append(draw(st.integers(-n, n - 1)) if n else draw(st.integers(-1, 1)))
        elif k == "slice":
            n = shape[d]
            parts.append(slice(draw(st.one_of(st.none(), st.integers(-n - 2, n + 2))),
                               draw(st.one_of(st.none(), st.integers(-n - 2, n + 2))),
                               draw(st.sampled_from([None, 1, 2, 3, -1, -2]))))
        elif k == "array":
            n = shape[d]
            sub = tuple(s if draw(st.booleans()) else 1 for s in bshape[draw(st.integers(0, len(bshape))):])
            vals = draw(st.lists(st.integers(-n, n - 1) if n else st.just(0), min_size=int(np.prod(sub)),
                                 max_size=int(np.prod(sub))))
            arr = np.array(vals, np.int64).reshape(sub)
            parts.append(("var", arr) if allow_vars and draw(st.booleans()) else arr)
        else:  # mask
            mshape = shape[d:d + m]
            bits = draw(st.lists(st.booleans(), min_size=int(np.prod(mshape)), max_size=int(np.prod(mshape))))
            mask = np.array(bits, bool).reshape(mshape)
            parts.append(("var", mask) if allow_vars and draw(st.booleans()) else mask)
    as_tuple = draw(st.booleans()) or len(parts) != 1
    return shape, parts, as_tuple


def np_key(parts, as_tuple):
    key = tuple(p[1] if isinstance(p, tuple) and p and p[0] == "var" else p for p in parts)
    return key if as_tuple else key[0]


def our_key(parts, as_tuple):
    key = tuple(F.array(p[1]) if isinstance(p, tuple) and p and p[0] == "var" else p for p in parts)
    return key if as_tuple else key[0]


def values_for(rng, shape, dtype):
    if dtype == "int32":
        return rng.integers(-50, 50, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("mode", MODES)
@given(case=index_cases(), dtype=st.sampled_from(["float32", "int32"]), seed=st.integers(0, 2**16))
def test_getitem_matches_numpy(case, dtype, seed, mode):
    shape, parts, as_tuple = case
    a = values_for(np.random.default_rng(seed), shape, dtype)
    try:
        want = a[np_key(parts, as_tuple)]
    except IndexError:
        with F.lazy_eval(mode == "lazy"), pytest.raises(IndexError):
            F.array(a)[our_key(parts, as_tuple)].read()
        return
    with F.lazy_eval(mode == "lazy"):
        got = F.array(a)[our_key(parts, as_tuple)]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.read(), want)
        assert got.dtype == dtype


@pytest.mark.parametrize("mode", MODES)
@given(case=index_cases(), dtype=st.sampled_from(["float32", "int32"]), seed=st.integers(0, 2**16),
       data=st.data())
def test_setitem_matches_numpy(case, dtype, seed, data, mode):
    shape, parts, as_tuple = case
    rng = np.random.default_rng(seed)
    a = values_for(rng, shape, dtype)
    nkey = np_key(parts, as_tuple)
    try:
        sel = a[nkey]
    except IndexError:
        x = F.array(a)
        with F.lazy_eval(mode == "lazy"), pytest.raises(IndexError):
            x[our_key(parts, as_tuple)] = 1
            x.read()
        return
    positions = np.arange(a.size).reshape(a.shape)[nkey]
    if np.unique(positions).size < positions.size:
        v = np.asarray(values_for(rng, (), dtype))  # repeated targets: one value
    else:
        drop = data.draw(st.integers(0, sel.ndim), label="drop")
        vshape = tuple(s if data.draw(st.booleans(), label="keep") else 1 for s in sel.shape[drop:])
        v = values_for(rng, vshape, dtype)
    want = a.copy()
    want[nkey] = v
    with F.lazy_eval(mode == "lazy"):
        x = F.array(a)
        before = x * 1
        handle = x
        x[our_key(parts, as_tuple)] = F.array(v) if data.draw(st.booleans(), label="var value") else v
        assert handle is x and x.shape == a.shape and x.dtype == dtype
        np.testing.assert_array_equal(x.read(), want)
        np.testing.assert_array_equal(before.read(), a)  # values computed from the old x are unaffected


# ---- hand-picked cases ------------------------------------------------------------------

A = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
MASK_34 = (np.arange(12).reshape(3, 4) % 3) == 0

GET_CASES = [
    (0, ":"), (-1,), (1, -2, 3, -4), (slice(None, None, -1),), (Ellipsis, slice(None, None, -2)),
    (slice(None), 0, slice(None), [1, 2]),          # int and array separated by a slice: indexed dims first
    (slice(None), [0], [1, 2]),                      # adjacent: indexed dims stay in place
    ([0, 1], Ellipsis, [4, 0]),
    (Ellipsis, None, 1),
    (None, 1, None, slice(2, None, -1)),
    (np.array(1),),
    (True,), (False,), (slice(None), True), (0, False, 1),
    ([],), ([[0], [1]], [[0, 1, 2]]),
    (1, MASK_34), (MASK_34[None].repeat(2, 0),), (slice(None), np.array([True, False, True]), slice(1, 3)),
    ([1, 0], slice(None), [[0], [3]], slice(None, None, 2)),
    (slice(5, 1, -1), slice(-100, 100)),
    (np.array([[1, 0]]), np.array([2, 0]), np.array([[3], [0]])),
]


def var_key(key):
    """The key with its integer arrays and masks as Vars."""
    out = []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            out.append(F.array(arr.astype(np.int64) if arr.dtype.kind == "f" else arr))
        else:
            out.append(k)
    return tuple(out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", GET_CASES, ids=[str(i) for i in range(len(GET_CASES))])
def test_getitem_cases(key, mode):
    key = tuple(slice(None) if isinstance(k, str) else k for k in key)
    want = A[key]
    with F.lazy_eval(mode == "lazy"):
        x = F.array(A)
        got = x[key]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.read(), want)
        # the same key with its integer arrays and masks as Vars
        got = x[var_key(key)]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.read(), want)


def test_getitem_zero_d_var_index_and_iteration():
    x = F.array(A)
    np.testing.assert_array_equal(x[F.array(1)].read(), A[1])
    np.testing.assert_array_equal(x[F.array(np.int32(-1)), 2].read(), A[-1, 2])
    assert [v.shape for v in x] == [(3, 4, 5)] * 2
    assert F.array(5.0)[()].shape == () and F.array(5.0)[...].item() == 5.0


def test_getitem_lazy_mask_var_is_read():
    with F.lazy_eval(True):
        x = F.array(A) + 1
        m = x > 100
        got = x[m]  # the mask is computed here: the result's shape depends on it
        assert got.shape == (int(((A + 1) > 100).sum()),)
        np.testing.assert_array_equal(got.read(), (A + 1)[(A + 1) > 100])


SET_CASES = [
    ((slice(1, 3),), [1, 2, 3, 4, 5]),
    ((0, slice(None), 1), 7.5),
    ((Ellipsis, slice(None, None, -2)), np.arange(4, dtype=np.float32)[:, None]),
    ((None, 1, slice(None), 0), np.ones((1, 1, 3, 1))),      # extra leading 1-dims in the value
    (([0, 0, 1],), np.array([[[1.0]], [[2.0]], [[3.0]]])),   # repeated index: last write wins
    ((slice(None), [2, 0], slice(1, 3)), -1.0),
    ((1, MASK_34), 0.5),
    ((MASK_34[None].repeat(2, 0),), np.arange(5, dtype=np.float32)),
    ((Ellipsis,), 3.0),
    ((slice(None), 0, slice(None), [1, 2]), np.arange(4, dtype=np.float32)),
    ((np.array([[1, 0]]), np.array([2, 0]), np.array([[3], [0]])), 9.0),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SET_CASES, ids=[str(i) for i in range(len(SET_CASES))])
def test_setitem_cases(case, mode):
    key, value = case
    want = A.copy()
    want[key] = value
    with F.lazy_eval(mode == "lazy"):
        x = F.array(A)
        derived = x * 2
        x[key] = value
        np.testing.assert_array_equal(x.read(), want)
        np.testing.assert_array_equal(derived.read(), A * 2)
        y = F.array(A)
        y[var_key(key)] = F.array(np.asarray(value, np.float32))
        np.testing.assert_array_equal(y.read(), want)


def test_setitem_casts_and_rebinds():
    x = F.array(np.zeros((2, 3), np.int32))
    alias = x
    other = x.reshape(2, 3)
    x[0, 1] = 2.9  # truncated to x's dtype, as numpy
    x[1] = F.array([1.5, -2.5, 3.0])
    assert x.dtype == "int32" and alias is x
    assert x.tolist() == [[0, 2, 0], [1, -2, 3]]
    assert other.tolist() == [[0, 0, 0], [0, 0, 0]]  # other handles keep the old value
    b = F.array(np.zeros(4, bool))
    b[1:3] = True
    assert b.tolist() == [False, True, True, False]


def test_setitem_mask_var_lazy_is_not_read():
    with F.lazy_eval(True):
        x = F.array(A) * 1
        x[x > 50] = 0.0  # where(): no evaluation needed
        assert not x._computed
        np.testing.assert_array_equal(x.read(), np.where(A > 50, 0, A))


def test_setitem_halves():
    for dt in ("float16", "bfloat16"):
        x = F.zeros((3, 4), dt)
        x[1, ::2] = 1.5
        x[[0, 2], 3] = F.array([2.0, 3.0])
        want = np.zeros((3, 4), np.float32)
        want[1, ::2] = 1.5
        want[[0, 2], 3] = [2.0, 3.0]
        assert x.dtype == dt
        np.testing.assert_array_equal(x.read().astype(np.float32), want)


# ---- errors: raise, never crash ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_index_errors(mode):
    with F.lazy_eval(mode == "lazy"):
        x = F.array(A)
        for key in [2, -3, (0, 3), (0, 0, [4]), ([[5]],), (0, 0, 0, 5)]:
            with pytest.raises(IndexError):
                x[key].read()
        with pytest.raises(IndexError, match="too many indices"):
            x[0, 0, 0, 0, 0]
        with pytest.raises(IndexError, match="single ellipsis"):
            x[..., 0, ...]
        with pytest.raises(IndexError):
            x[0.5]
        with pytest.raises(IndexError):
            x[[0.5]]
        with pytest.raises(IndexError, match="boolean index did not match"):
            x[np.ones(3, bool)]
        with pytest.raises(IndexError, match="shape mismatch"):
            x[[0, 1], [0, 1, 2]]
        with pytest.raises(ValueError):
            x[::0]
        with pytest.raises(IndexError):  # data-dependent: found by the kernel
            x[F.array([0, 2])].read()
        with pytest.raises(IndexError):
            x[:, F.array([[0], [-4]]), F.array([1])].read()
        with pytest.raises(IndexError):
            y = F.array(A)
            y[F.array([7])] = 1.0
            y.read()
        with pytest.raises(ValueError, match="could not broadcast"):
            y = F.array(A)
            y[0] = np.ones((4, 4))


@pytest.mark.parametrize("mode", MODES)
def test_index_op_errors(mode):
    with F.lazy_eval(mode == "lazy"):
        x = F.array(A)
        idx = F.array(np.array([0, 9]))
        with pytest.raises(IndexError, match="gather"):
            F.take(x, idx, axis=3).read()
        with pytest.raises(IndexError):
            F.take(x, [9], axis=3)
        with pytest.raises(ValueError):
            F.take(x, [0], axis=4)
        with pytest.raises(IndexError, match="gather_nd"):
            F.gather_nd(x, F.array(np.array([[0, 3]]))).read()
        with pytest.raises(IndexError, match="take_along_axis"):
            F.take_along_axis(x, F.array(np.full((1, 1, 1, 1), 5)), 3).read()
        with pytest.raises(IndexError, match="put_along_axis"):
            F.put_along_axis(x, F.array(np.full((1, 1, 1, 1), -6)), 0.0, 3).read()
        with pytest.raises(IndexError, match="scatter_nd"):
            F.scatter_nd(F.array(np.array([[4]])), F.array([1.0]), [4]).read()
        with pytest.raises(ValueError):
            F.take_along_axis(x, F.array(np.zeros((2, 2), np.int64)), 0)
        with pytest.raises(IndexError):
            F.gather_nd(x, F.array([[0.5]]))


@pytest.mark.parametrize("mode", MODES)
def test_movement_errors(mode):
    with F.lazy_eval(mode == "lazy"):
        x = F.array(A)
        with pytest.raises(ValueError):
            F.reshape(x, (7, -1))
        with pytest.raises(ValueError):
            F.reshape(x, (-1, -1, 2))
        with pytest.raises(ValueError):
            F.transpose(x, (0, 0, 1, 2))
        with pytest.raises(ValueError):
            F.transpose(x, (0, 1, 2))
        with pytest.raises(ValueError):
            F.transpose(x, (0, 1, 2, 4))
        with pytest.raises(ValueError):
            F.swapaxes(x, 0, 4)
        with pytest.raises(ValueError):
            F.concatenate([x, F.zeros((2, 3, 4, 6))], axis=0)
        with pytest.raises(ValueError):
            F.concatenate([x, x], axis=4)
        with pytest.raises(ValueError):
            F.concatenate([F.array(1.0), F.array(2.0)])
        with pytest.raises(ValueError):
            F.stack([x, F.zeros(3)])
        with pytest.raises(ValueError):
            F.broadcast_to(x, (3, 3, 4, 5))
        with pytest.raises(ValueError):
            F.broadcast_to(x, (3, 4, 5))
        with pytest.raises(ValueError):
            F.squeeze(x, 1)
        with pytest.raises(ValueError):
            F.expand_dims(x, 6)
        with pytest.raises(ValueError):
            F.split(x, 2, axis=1)
        with pytest.raises(ValueError):
            F.pad(F.zeros((0, 3)), 1, mode="reflect")
        with pytest.raises(ValueError):
            F.pad(x, ((1, 2), (3, 4)))
        with pytest.raises(ValueError):
            F.pad(x, -1)
        with pytest.raises(ValueError):
            F.pad(x, 1, mode="linear_ramp")
        with pytest.raises(ValueError):
            F.tile(x, (-1, 1))
        with pytest.raises(ValueError):
            F.flip(x, (0, 0))
        with pytest.raises(ValueError):
            F.flip(x, 4)
        with pytest.raises(ValueError):
            F.repeat(x, [1, 2, 3], axis=0)
        with pytest.raises(ValueError):
            F.slice(x, [1], [5])
        with pytest.raises(ValueError):
            F.moveaxis(x, (0, 1), (1,))


def test_raster_validates_regions():
    x = F.arange(6)
    bad = [
        [0, 1, 0, 0, 7, 1, 1],        # reads past the source
        [0, 1, 0, 0, 6, 1, 2],        # writes past the destination
        [0, 1, 4, 0, 6, -1, 1],       # negative stride reads before the start
        [1, 1, 0, 0, 1, 1, 1],        # no input 1
        [0, 9, 0, 0],                 # too many dims
        [0, 2, 0, 0, 2, 3],           # truncated record
        [0, 1, 0, 0, -1, 1, 1],       # negative size
        [0, 1, 0, 0, 2**62, 2**62, 1],  # overflowing extent
        [-1, 1, 0, 0, 7, 1, 1],       # self read past the destination
    ]
    for regions in bad:
        with pytest.raises(ValueError, match="raster"):
            F.raster([x], regions, [6])
    with pytest.raises(ValueError):
        F.raster([x], [], [-1])
    with pytest.raises(TypeError):
        F.raster([x, F.zeros(2)], [], [2])
    # a valid one: interleave x with its reverse, zeros where nothing is written
    out = F.raster([x], [0, 1, 0, 0, 6, 1, 2, 0, 1, 5, 1, 6, -1, 2], [14])
    assert out.tolist() == [0, 5, 1, 4, 2, 3, 3, 2, 4, 1, 5, 0, 0, 0]


def test_reshape_zero_convention():
    x = F.zeros((4, 6))
    assert F.reshape(x, (0, -1)).shape == (4, 6)      # MNN: 0 copies the dim
    assert F.reshape(x, (2, 0, -1)).shape == (2, 6, 2)
    with pytest.raises(ValueError):
        F.reshape(x, (2, 0, 3))  # neither a NumPy nor an MNN reshape
    assert F.reshape(F.zeros((0, 3)), (0, 5)).shape == (0, 5)  # NumPy: a literal zero-size dim


def test_one_hot_and_scatter_nd_mnn():
    got = F.one_hot(F.array([0, 3, -1]), 3, on_value=5, off_value=-1, axis=0, dtype="int32")
    assert got.dtype == "int32"
    assert got.tolist() == [[5, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    out = F.scatter_nd(F.array([[0, 1], [2, 2], [0, 1]]), F.array([1, 2, 3]), [3, 3])
    assert out.tolist() == [[0, 4, 0], [0, 0, 0], [0, 0, 2]]


def test_transpose_large_matches_numpy():
    rng = np.random.default_rng(0)
    for shape, perm in [((1000, 1000), (1, 0)), ((8, 64, 56, 56), (0, 2, 3, 1)), ((3, 300, 7), (2, 0, 1))]:
        a = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(F.transpose(F.array(a), perm).read(), a.transpose(perm))
