"""Random numbers: the generator algorithm, reproducibility, eager == lazy,
distributions, ranges and argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import mnn_expr as F
import tests.op_records  # noqa: F401  (loads the record modules first; importing one alone is circular)
from mnn_expr import random as R
from tests.records.random import philox4x32_10, ref_normal, ref_uniform

N = 100_000


def test_philox_known_answers() -> None:
    # Known-answer vectors of Random123 (kat_vectors: philox4x32 10 rounds).
    assert philox4x32_10([0], 0, 0)[:, 0].tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    ones = 0xFFFFFFFF
    assert philox4x32_10([ones | ones << 32], ones | ones << 32, ones | ones << 32)[:, 0].tolist() == [
        0x408F276D,
        0x41C83B0E,
        0xA20BC7C6,
        0x6D5451FD,
    ]
    pi = philox4x32_10(
        [0x243F6A88 | 0x85A308D3 << 32], 0x13198A2E | 0x03707344 << 32, 0xA4093822 | 0x299F31D0 << 32
    )
    assert pi[:, 0].tolist() == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_native_matches_model_bit_for_bit() -> None:
    for dtype in ("float32", "float64", "float16"):
        ours = F.apply(
            "random_uniform", [], shape=[3, 37], dtype=dtype, low=-1.0, high=2.5, seed=123, offset=9
        )[0]
        np.testing.assert_array_equal(ours.read(), ref_uniform((3, 37), dtype, -1.0, 2.5, 123, 9))
    ours = F.apply("random_normal", [], shape=[101], dtype="float64", mean=0.5, std=2.0, seed=7, offset=1)[0]
    np.testing.assert_allclose(
        ours.read(), ref_normal((101,), "float64", 0.5, 2.0, 7, 1), rtol=1e-13, atol=1e-13
    )


def test_seed_reproducible_and_calls_differ() -> None:
    R.seed(1234)
    a, b = R.uniform(size=50), R.normal(size=50)
    R.seed(1234)
    assert np.array_equal(a.read(), R.uniform(size=50).read())
    assert np.array_equal(b.read(), R.normal(size=50).read())
    assert not np.array_equal(R.uniform(size=50).read(), R.uniform(size=50).read())
    g1, g2 = R.Generator(5), R.default_rng(5)
    assert np.array_equal(g1.integers(0, 100, size=20).read(), g2.integers(0, 100, size=20).read())
    assert not np.array_equal(R.Generator(5).random(20).read(), R.Generator(6).random(20).read())


def test_state_round_trip() -> None:
    g = R.Generator(9)
    g.random(3)
    state = g.state
    a = g.random(4).read()
    g.state = state
    assert np.array_equal(a, g.random(4).read())


def test_element_depends_only_on_position() -> None:
    """Element i is the same whatever the size and thread count of the draw."""
    big = F.apply("random_uniform", [], shape=[100_000], seed=3, offset=4)[0].read()
    small = F.apply("random_uniform", [], shape=[1001], seed=3, offset=4)[0].read()
    assert np.array_equal(big[:1001], small)
    old = F.get_thread_number()
    try:
        F.set_thread_number(1)
        one = F.apply("random_normal", [], shape=[100_000], seed=3, offset=4)[0].read()
        F.set_thread_number(max(2, old))
        many = F.apply("random_normal", [], shape=[100_000], seed=3, offset=4)[0].read()
    finally:
        F.set_thread_number(old)
    assert np.array_equal(one, many)


def test_eager_equals_lazy() -> None:
    def draw():
        g = R.Generator(77)
        return [
            g.uniform(-1, 1, size=(4, 5)),
            g.normal(size=7, dtype="float64"),
            g.integers(3, 9, size=10),
            g.permutation(12),
            g.bernoulli(0.25, size=9),
        ]

    eager = [v.read() for v in draw()]
    with F.lazy_eval(True):
        lazy = draw()
        assert not any(v._computed for v in lazy)
        lazy = [v.read() for v in lazy]
    for e, z in zip(eager, lazy):
        assert e.dtype == z.dtype and np.array_equal(e, z)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_moments_and_range(dtype: str) -> None:
    x = R.Generator(11).uniform(2.0, 5.0, size=N, dtype=dtype).read()
    assert x.dtype == dtype and x.min() >= 2.0 and x.max() < 5.0
    assert abs(x.mean() - 3.5) < 0.02 and abs(x.std() - 3 / 12**0.5) < 0.01
    hist = np.histogram(x, bins=10, range=(2, 5))[0]
    assert hist.min() > N / 10 * 0.9  # roughly flat


def test_uniform_stays_below_high_after_rounding() -> None:
    for dtype in ("float16", "bfloat16", "float32"):
        x = R.Generator(2).uniform(0.0, 1.0, size=N, dtype=dtype)
        v = x.read().astype(np.float64)
        assert x.dtype == dtype and v.min() >= 0.0 and v.max() < 1.0
    # a span too small for the dtype: every value is low
    x = R.uniform(1.0, 1.0, size=10).read()
    assert (x == 1.0).all()


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_normal_moments(dtype: str) -> None:
    x = R.Generator(12).normal(1.5, 2.0, size=N, dtype=dtype).read().astype(np.float64)
    assert abs(x.mean() - 1.5) < 0.03 and abs(x.std() - 2.0) < 0.03
    z = (x - 1.5) / 2.0
    assert abs(np.mean(z**3)) < 0.05 and abs(np.mean(z**4) - 3.0) < 0.1  # skewness, kurtosis
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.01


def test_randn_is_normal_not_uniform() -> None:
    x = F.randn(N).read()
    assert x.min() < -3 and x.max() > 3 and abs(x.std() - 1) < 0.02


def test_randint_bounds_and_coverage() -> None:
    x = R.randint(-3, 4, size=N).read()
    assert x.dtype == np.int64 and x.min() == -3 and x.max() == 3
    counts = np.bincount(x + 3)
    assert counts.min() > N / 7 * 0.9
    y = F.randint(5, size=(10, 10), dtype="uint8").read()
    assert y.dtype == np.uint8 and y.max() < 5
    z = R.Generator(0).integers(0, 3, size=1000, endpoint=True).read()
    assert set(z.tolist()) == {0, 1, 2, 3}
    big = R.Generator(0).integers(-(2**40), 2**40, size=1000).read()
    assert big.min() >= -(2**40) and big.max() < 2**40 and big.std() > 2**38


def test_permutation_is_a_permutation() -> None:
    for n in (0, 1, 2, 10, 1000):
        p = R.permutation(n).read()
        assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(n))
    assert not np.array_equal(R.permutation(1000).read(), np.arange(1000))


@pytest.mark.skipif(not F.OP_TABLE["gather"].has_kernel, reason="gather lands with the index family")
def test_permutation_and_choice_of_arrays() -> None:
    x = F.array(np.arange(20).reshape(10, 2))
    p = R.Generator(4).permutation(x).read()
    assert sorted(p[:, 0].tolist()) == list(range(0, 20, 2)) and (p[:, 1] == p[:, 0] + 1).all()
    c = R.Generator(4).choice(F.array([5, 6, 7]), size=50).read()
    assert set(c.tolist()) <= {5, 6, 7}


def test_choice_and_bernoulli() -> None:
    c = R.Generator(1).choice(10, size=(3, 3), replace=False).read()
    assert c.shape == (3, 3) and len(set(c.reshape(-1).tolist())) == 9
    b = R.Generator(1).bernoulli(0.3, size=N).read()
    assert b.dtype == np.float32 and set(np.unique(b).tolist()) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01
    p = F.array(np.array([0.0, 1.0, 0.5], dtype=np.float32))
    bp = R.bernoulli(p, size=(1000, 3)).read()
    assert bp[:, 0].sum() == 0 and bp[:, 1].sum() == 1000 and abs(bp[:, 2].mean() - 0.5) < 0.06


def test_array_bounds_broadcast() -> None:
    lo = F.array(np.array([0.0, 10.0], dtype=np.float32))
    x = R.uniform(lo, lo + 1, size=(1000, 2)).read()
    assert (x[:, 0] < 1).all() and (x[:, 1] >= 10).all() and (x[:, 1] < 11).all()
    y = R.normal(F.array(np.array([0.0, 100.0], dtype=np.float32)), 1.0).read()
    assert y.shape == (2,) and y[1] > 90


def test_mnn_randomuniform() -> None:
    a = F.randomuniform([3, 4], F.float, 0.0, 2.0, 1, 2).read()
    b = F.randomuniform([3, 4], F.float, 0.0, 2.0, 1, 2).read()
    assert (
        a.shape == (3, 4) and np.array_equal(a, b) and a.min() >= 0 and a.max() < 2
    )  # seeded: deterministic
    c, d = F.randomuniform([50], seed0=0, seed1=0), F.randomuniform([50], seed0=0, seed1=0)
    assert not np.array_equal(c.read(), d.read())  # unseeded: from the global generator


def test_errors() -> None:
    with pytest.raises(ValueError):
        R.uniform(2.0, 1.0, size=3)
    with pytest.raises(ValueError):
        R.normal(0.0, -1.0, size=3)
    with pytest.raises(ValueError):
        R.randint(5, 5)
    with pytest.raises(ValueError):
        R.randint(0, 300, dtype="uint8")
    with pytest.raises(TypeError):
        R.uniform(size=3, dtype="int32")
    with pytest.raises(ValueError):
        R.uniform(size=(-1, 2))
    with pytest.raises(ValueError):
        R.seed(-1)
    with pytest.raises(ValueError):
        R.Generator(0).choice(3, size=5, replace=False)
    with pytest.raises(ValueError):
        R.bernoulli(1.5)
    with pytest.raises(ValueError):  # validated natively too
        F.apply("random_uniform", [], shape=[2], low=1.0, high=float("nan"), seed=0, offset=0)
    with pytest.raises(TypeError):
        F.apply("random_normal", [], shape=[2], dtype="int64", seed=0, offset=0)
