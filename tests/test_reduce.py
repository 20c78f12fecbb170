"""Reductions, scans and sorting beyond the op records: large inputs (the
blocked, strided and multi-stage kernel paths), accuracy, thread-count
independence and error cases."""

from __future__ import annotations

import numpy as np
import pytest

import mnn_expr as F


@pytest.fixture(params=[1, 3])
def threads(request):
    old = F.get_thread_number()
    F.set_thread_number(request.param)
    yield request.param
    F.set_thread_number(old)


# Shapes and axes chosen to hit every kernel path: long contiguous rows (blocked),
# long strided reductions (row blocks merged as a tree), several separate
# reduced blocks (staged), and conversion-only reductions.
CASES = [
    ((200_003,), None),
    ((3, 70_001), 1),
    ((70_001, 3), 0),
    ((130, 257), 0),
    ((5, 300, 7), (0, 2)),
    ((4, 3, 5, 6, 2), (0, 2, 4)),
    ((4, 3, 5, 6, 2), (1, 3)),
    ((2, 1, 3), 1),
    ((3, 4), ()),
]


@pytest.mark.parametrize("shape,axis", CASES)
def test_large_reductions_match_numpy(shape, axis, threads) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, shape).astype(np.float32)
    xi = rng.integers(-50, 50, shape).astype(np.int32)
    X, XI = F.array(x), F.array(xi)
    x64 = x.astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(x.size))
    np.testing.assert_allclose(F.sum(X, axis).read(), x64.sum(axis), **tol)
    np.testing.assert_allclose(F.mean(X, axis).read(), x64.mean(axis), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(F.max(X, axis).read(), x.max(axis))
    np.testing.assert_array_equal(F.min(X, axis, keepdims=True).read(), x.min(axis, keepdims=True))
    np.testing.assert_array_equal(F.sum(XI, axis).read(), xi.sum(axis, dtype=np.int64))
    np.testing.assert_array_equal(F.max(XI, axis).read(), xi.max(axis))
    np.testing.assert_array_equal(F.any(X > 1.99, axis).read(), (x > 1.99).any(axis))
    np.testing.assert_array_equal(F.all(X > -1.99, axis).read(), (x > -1.99).all(axis))
    p = F.prod(F.array((x64 / 50 + 1).astype(np.float32)), axis).read()
    np.testing.assert_allclose(
        p, np.prod((x64 / 50 + 1).astype(np.float32).astype(np.float64), axis), rtol=1e-4
    )


@pytest.mark.parametrize(
    "shape,axis", [((300_001,), 0), ((5, 70_001), 1), ((70_001, 5), 0), ((40, 50, 30), 1)]
)
def test_large_arg_and_scan(shape, axis, threads) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 1000, shape).astype(np.float32)
    X = F.array(x)
    np.testing.assert_array_equal(F.argmax(X, axis).read(), x.argmax(axis))
    np.testing.assert_array_equal(F.argmin(X, axis).read(), x.argmin(axis))
    np.testing.assert_allclose(F.cumsum(X, axis).read(), np.cumsum(x.astype(np.float64), axis), rtol=1e-6)
    xi = rng.integers(-5, 5, shape).astype(np.int8)
    np.testing.assert_array_equal(
        F.cumsum(F.array(xi), axis, reverse=True).read(),
        np.flip(np.cumsum(np.flip(xi, axis), axis, dtype=np.int64), axis),
    )


def test_nan_in_long_rows() -> None:
    x = np.random.default_rng(2).uniform(-1, 1, 200_000).astype(np.float32)
    x[123_457] = np.nan
    x[190_000] = np.nan
    X = F.array(x)
    assert np.isnan(F.max(X).item()) and np.isnan(F.min(X).item())
    assert F.argmax(X).item() == 123_457 and F.argmin(X).item() == 123_457
    y = np.full(100_000, np.inf, np.float32)
    y[5] = -np.inf  # infinities alone are not NaN
    assert F.max(F.array(y)).item() == np.inf and F.min(F.array(y)).item() == -np.inf


def test_float32_sum_is_accurate() -> None:
    x = np.random.default_rng(3).random(10_000_000, dtype=np.float32)
    exact = x.astype(np.float64).sum()
    ours = F.sum(F.array(x)).item()
    assert abs(ours - exact) / exact < 1e-6
    col = np.ones((1_000_000, 2), np.float32) * np.float32(0.1)
    np.testing.assert_allclose(F.sum(F.array(col), 0).read(), [100_000.0, 100_000.0], rtol=1e-6)


def test_results_do_not_depend_on_thread_count() -> None:
    x = F.array(np.random.default_rng(4).standard_normal((3, 300_000)).astype(np.float32))
    old = F.get_thread_number()
    try:
        F.set_thread_number(1)
        a = [F.sum(x).read(), F.sum(x, 0).read(), F.mean(x, 1).read()]
        F.set_thread_number(4)
        b = [F.sum(x).read(), F.sum(x, 0).read(), F.mean(x, 1).read()]
    finally:
        F.set_thread_number(old)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def test_large_sort_and_topk(threads) -> None:
    rng = np.random.default_rng(5)
    for dtype in ("float32", "float64", "int8", "int32", "int64", "uint8"):
        if dtype.startswith("float"):
            x = rng.integers(-100, 100, (3, 5000)).astype(dtype)
            x[x == 7] = np.nan
            x[x == 0] = -0.0
        else:
            x = rng.integers(0 if dtype == "uint8" else -100, 100, (3, 5000)).astype(dtype)
        v, i = F.apply("sort", [F.array(x)], axis=1)
        np.testing.assert_array_equal(i.read(), np.argsort(x, axis=1, kind="stable"))
        np.testing.assert_array_equal(v.read(), np.sort(x, axis=1))
        vt, it = F.topk(F.array(x.T.copy()), 50, axis=0, largest=False)
        np.testing.assert_array_equal(it.read(), np.argsort(x.T, axis=0, kind="stable")[:50])
    big = rng.standard_normal(300_000).astype(np.float32)
    np.testing.assert_array_equal(F.argsort(F.array(big)).read(), np.argsort(big, kind="stable"))


def test_dtypes_follow_the_documented_rules() -> None:
    for dt in ("bool", "int8", "uint8", "int32", "int64"):
        x = F.array(np.ones((2, 3), dtype=dt))
        assert F.sum(x).dtype == "int64" and F.prod(x).dtype == "int64" and F.cumsum(x).dtype == "int64"
        assert F.mean(x).dtype == "float32" and F.var(x).dtype == "float32"
        assert F.max(x).dtype == dt and F.argmax(x).dtype == "int64" and F.any(x).dtype == "bool"
    for dt in ("float16", "bfloat16", "float32", "float64"):
        x = F.ones((2, 3), dtype=dt)
        assert F.sum(x).dtype == dt and F.mean(x).dtype == dt and F.cumprod(x).dtype == dt
    assert F.sum(F.array([], dtype="float32")).item() == 0.0
    assert F.prod(F.zeros((2, 0), dtype="int32"), axis=1).tolist() == [1, 1]
    assert F.all(F.zeros((0,))).item() is True and F.any(F.zeros((0,))).item() is False
    assert np.isnan(F.mean(F.zeros((0,))).item())


def test_lazy_matches_eager() -> None:
    x = np.random.default_rng(6).standard_normal((6, 7, 8)).astype(np.float32)
    funcs = [
        lambda v: F.sum(v, (0, 2)),
        lambda v: F.var(v, 1, ddof=1),
        lambda v: F.logsumexp(v, -1),
        lambda v: F.argmax(v, 1),
        lambda v: F.cumprod(v, 2),
        lambda v: F.sort(v, 0, descending=True),
        lambda v: F.topk(v, 3, 1)[1],
    ]
    eager = [f(F.array(x)).read() for f in funcs]
    with F.lazy_eval(True):
        lazy = [f(F.array(x)) for f in funcs]
        lazy = [v.read() for v in lazy]
    for e, z in zip(eager, lazy):
        np.testing.assert_array_equal(e, z)


def test_errors_are_value_errors() -> None:
    x = F.ones((2, 3))
    with pytest.raises(ValueError, match="out of range"):
        F.sum(x, axis=2)
    with pytest.raises(ValueError, match="out of range"):
        F.apply("reduce_sum", [x], axes=[-3])
    with pytest.raises(ValueError, match="repeated"):
        F.sum(x, axis=(0, -2))
    with pytest.raises(ValueError, match="repeated"):
        F.apply("reduce_max", [x], axes=[1, 1])
    with pytest.raises(
        ValueError, match="zero-size array to reduction operation maximum which has no identity"
    ):
        F.max(F.zeros((0, 3)), axis=0)
    with pytest.raises(ValueError, match="minimum"):
        F.min(F.zeros((0,)))
    with pytest.raises(ValueError, match="empty sequence"):
        F.argmax(F.zeros((3, 0)), axis=1)
    with pytest.raises(ValueError):
        F.argmin(F.zeros((0,)))
    with pytest.raises(ValueError, match="out of range"):
        F.argmax(x, axis=5)
    with pytest.raises(ValueError):
        F.cumsum(x, axis=-3)
    with pytest.raises(ValueError):
        F.cumsum(F.array(1.0), axis=0)
    with pytest.raises(ValueError, match="k = 4"):
        F.topk(x, 4)
    with pytest.raises(ValueError):
        F.topk(x, -1)
    with pytest.raises(ValueError):
        F.sort(x, axis=2)
    with pytest.raises(ValueError):
        F.sort(F.array(1.0))
    with pytest.raises(ValueError, match="kind"):
        F.sort(x, kind="bogus")
    # Lazy mode checks shapes when the op is built, before anything runs.
    with F.lazy_eval(True):
        with pytest.raises(ValueError):
            F.max(F.zeros((0, 2)), axis=0)
    # Empty reductions that are fine: empty outputs, and max with an initial value.
    assert F.max(F.zeros((0, 3)), axis=1).shape == (0,)
    assert F.argmax(F.zeros((0, 3)), axis=1).shape == (0,)
    assert F.max(F.zeros((0,)), initial=-1.0).item() == -1.0


def test_mnn_spellings() -> None:
    x = F.array([[1.0, 2.0], [3.0, 4.0]])
    assert F.reduce_sum(x).item() == 10.0 and F.reduce_sum(x, []).item() == 10.0
    assert F.reduce_mean(x, [0], True).tolist() == [[2.0, 3.0]]
    assert F.reduce_max(x, 1).tolist() == [2.0, 4.0]
    m, v = F.moments(F.array(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)))
    assert m.shape == (1, 1, 1, 1) and m.item() == 7.5 and v.item() == pytest.approx(21.25)
    assert F.sort(F.array([3, 1, 2]), -1, True, True).tolist() == [
        0,
        2,
        1,
    ]  # MNN: sort(x, axis, arg, descend)
