"""Vectorised float32 math kernels (native/src/ops/vmath*.cc) at every CPU dispatch level.

For each function and each level this machine supports (MNN_CPU_LEVEL=generic|avx2|avx512, set
in-process), the float32 results are compared with a float64 reference on dense grids over the
interesting ranges (range-reduction boundaries, branch switch points, tiny and subnormal inputs,
+-0, huge values) and on hypothesis-drawn arrays.  The error is measured in units in the last
place of the float32 result: ulp(y) = 2^(floor(log2|y|) - 23), and 2^-149 for results below
2^-126, so subnormal results are held to the same bound in absolute terms (no flush to zero).
Results whose reference overflows float32 must be inf.  Special values (NaN, +-inf, +-0) are
checked exactly.  The bounds are the ones documented in vmath_impl.h and docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mnn_expr as F
from tests.conftest import cpu_flags

F32_MAX = float(np.finfo(np.float32).max)
INF, NAN = math.inf, math.nan
TINY = (1e-45, 3e-45, 1e-40, 1.1754942e-38, 1.1754944e-38, 1e-30, 1e-20, 1e-10, 1e-5)


def _cpu_flags() -> set:
    return cpu_flags()


_FLAGS = _cpu_flags()
LEVELS = ["generic"]
if {"avx2", "fma"} <= _FLAGS:
    LEVELS.append("avx2")
    if "avx512f" in _FLAGS:
        LEVELS.append("avx512")


# ---- float64 references --------------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * _erfc(-x / math.sqrt(2)).astype(np.float64)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    # 0.5 x (1 + tanh u) == x sigmoid(2u), the form without cancellation for x < 0.
    return x * _sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))


REF = {
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "erf": lambda x: _erf(x).astype(np.float64),
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "expm1": np.expm1,
    "log1p": np.log1p,
    "softplus": lambda x: np.logaddexp(0.0, x),
}

# Max error in ulps of the float32 result, per function (the same at every level).
ULP_BOUND = {"exp": 1.5, "log": 1.5, "tanh": 2, "sigmoid": 3, "silu": 4, "erf": 3, "gelu": 5, "gelu_tanh": 4,
             "expm1": 2, "log1p": 2, "softplus": 2}

# Exact results for special inputs.  silu/gelu/gelu_tanh at -inf give -0, the limit.
_SPECIAL_X = [NAN, INF, -INF, 0.0, -0.0]
SPECIALS = {
    "exp": [NAN, INF, 0.0, 1.0, 1.0],
    "log": [NAN, INF, NAN, -INF, -INF],
    "tanh": [NAN, 1.0, -1.0, 0.0, -0.0],
    "sigmoid": [NAN, 1.0, 0.0, 0.5, 0.5],
    "silu": [NAN, INF, -0.0, 0.0, -0.0],
    "erf": [NAN, 1.0, -1.0, 0.0, -0.0],
    "gelu": [NAN, INF, -0.0, 0.0, -0.0],
    "gelu_tanh": [NAN, INF, -0.0, 0.0, -0.0],
    "expm1": [NAN, INF, -1.0, 0.0, -0.0],
    "log1p": [NAN, INF, NAN, 0.0, -0.0],
    "softplus": [NAN, INF, 0.0, math.log(2), math.log(2)],
}


def _ulp(ref: np.ndarray) -> np.ndarray:
    _, e = np.frexp(np.abs(ref))  # |ref| = m 2^e, m in [0.5, 1)
    return np.ldexp(1.0, np.maximum(e - 1, -126) - 23)


def _signed(values: list[float]) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    return np.concatenate([v, -v])


def _around(points: np.ndarray, k: int = 3) -> np.ndarray:
    """float32 points and their k neighbours on each side."""
    p = np.asarray(points, dtype=np.float32)
    out = [p]
    lo = hi = p
    for _ in range(k):
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
        out += [lo, hi]
    return np.concatenate(out)


def _grid(name: str) -> np.ndarray:
    """Dense float32 inputs over the ranges that matter for `name`."""
    ln2 = math.log(2)
    geo = np.geomspace(1e-44, 3e38, 20001)  # every binade, subnormal to huge
    common = [geo, -geo, np.array(TINY), -np.array(TINY), [0.0, -0.0, F32_MAX, -F32_MAX]]
    if name == "exp":
        parts = [np.linspace(-110, 90, 400001),
                 _around((np.arange(-160, 130) + 0.5) * ln2),  # Cody-Waite round-to-nearest switch points
                 _around([88.72283, 88.7228394, -87.33654, -103.27893, -103.972084, -104.0, -120.0])]
    elif name == "log":
        e = np.arange(-149, 128, dtype=np.float64)
        parts = [np.exp2(e), _around(np.exp2(e), 2), _around(math.sqrt(2) * np.exp2(e[:-1]), 2),
                 1 + np.linspace(-0.3, 0.3, 200001), _around([1.0], 200), np.geomspace(1e-45, 3e38, 200001)]
        common = [np.array([0.0, -0.0, F32_MAX, 1e-45])]
    elif name == "tanh":
        parts = [np.linspace(-12, 12, 400001), _around(_signed([0.625, 9.0, 44.0]), 5)]
    elif name in ("sigmoid", "silu"):
        parts = [np.linspace(-110, 110, 400001), _around(_signed([88.0, 103.97, 110.0, 120.0]), 5)]
    elif name == "erf":
        parts = [np.linspace(-7, 7, 400001), _around(_signed([1.0, 6.0]), 5)]
    elif name == "gelu":
        parts = [np.linspace(-16, 16, 400001), _around(_signed([math.sqrt(0.5), math.sqrt(2), 14.1, 20.0]), 5)]
    elif name == "gelu_tanh":
        parts = [np.linspace(-16, 16, 400001), _around(_signed([20.0, 6.0, 5.5]), 5)]
    elif name == "expm1":
        parts = [np.linspace(-35, 90, 400001), _around((np.arange(-50, 130) + 0.5) * ln2),
                 _around([20.0, 88.37626, 88.72283, -30.0], 5), np.geomspace(1e-30, 1, 20001),
                 -np.geomspace(1e-30, 1, 20001)]
    elif name == "log1p":
        parts = [np.linspace(-1, 10, 400001), -1 + np.geomspace(1e-8, 1, 20001), _around([-1.0], 50)[50:],
                 _around([math.sqrt(0.5) - 1, math.sqrt(2) - 1], 5), np.geomspace(1e-44, 1, 20001),
                 -np.geomspace(1e-44, 0.99, 20001)]
        common = [geo, np.array([0.0, -0.0, F32_MAX])]
    else:  # softplus
        parts = [np.linspace(-110, 110, 400001), _around(_signed([0.0, 16.0, 88.0, 104.0]), 5)]
    x = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts + common]).astype(np.float32)
    return x[np.isfinite(x)]


def _run(name: str, x: np.ndarray) -> np.ndarray:
    return getattr(F, name)(x).read()


def _check(name: str, x: np.ndarray, got: np.ndarray, level: str) -> None:
    assert got.dtype == np.float32 and got.shape == x.shape
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        ref = REF[name](x64)
    nan_ref = np.isnan(ref)
    bad = np.isnan(got) != nan_ref
    assert not bad.any(), f"{name} [{level}]: NaN mismatch at x={x[bad][:5]}"
    ok = ~nan_ref
    x64, ref, g = x64[ok], ref[ok], got[ok].astype(np.float64)
    over = np.abs(ref) >= F32_MAX * (1 + 2.0**-25)  # rounds to inf in float32
    if over.any():
        assert np.array_equal(g[over], np.copysign(np.inf, ref[over])), f"{name} [{level}]: overflow must give inf"
    fin = ~over
    err = np.abs(g[fin] - ref[fin]) / _ulp(ref[fin])
    worst = int(np.argmax(err)) if err.size else 0
    assert err.size == 0 or err[worst] <= ULP_BOUND[name], (
        f"{name} [{level}]: {err[worst]:.2f} ulp > {ULP_BOUND[name]} at x={x64[fin][worst]!r}: "
        f"got {g[fin][worst]!r}, want {ref[fin][worst]!r}")


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MNN_CPU_LEVEL", request.param)
    return request.param


@pytest.mark.parametrize("name", list(REF))
def test_dense_grid_within_ulp_bound(name: str, level: str) -> None:
    x = _grid(name)
    _check(name, x, _run(name, x), level)


@pytest.mark.parametrize("name", list(REF))
def test_specials_exact(name: str, level: str) -> None:
    x = np.array(_SPECIAL_X, dtype=np.float32)
    got = _run(name, x)
    want = np.array(SPECIALS[name], dtype=np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name} [{level}]: {got} != {want}"
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok], want[ok]) and np.array_equal(np.signbit(got[ok]), np.signbit(want[ok])), (
        f"{name} [{level}]: {got} != {want}")


def test_saturation_and_tails(level: str) -> None:
    big = np.array([20.0, 50.0, 1e4, 1e30, F32_MAX], dtype=np.float32)
    assert np.all(_run("tanh", big) == 1) and np.all(_run("tanh", -big) == -1)
    assert np.all(_run("sigmoid", big) == 1) and np.all(_run("erf", big) == 1) and np.all(_run("erf", -big) == -1)
    s = _run("sigmoid", -big)
    assert np.all(s >= 0) and not np.isnan(s).any()
    assert _run("sigmoid", np.array([-100.0], np.float32))[0] > 0  # subnormal, not flushed
    assert _run("exp", np.array([89.0, 1e30], np.float32)).tolist() == [INF, INF]
    assert _run("exp", np.array([-104.0, -1e30], np.float32)).tolist() == [0.0, 0.0]
    assert _run("exp", np.array([-100.0], np.float32))[0] > 0  # gradual underflow
    assert np.all(np.isnan(_run("log", np.array([-1.0, -1e-45, -INF], np.float32))))
    huge = np.array([200.0, 1e4, 1e30, F32_MAX], dtype=np.float32)
    for name in ("silu", "gelu", "gelu_tanh"):
        y = _run(name, -huge)
        assert np.all(y == 0) and np.all(np.signbit(y)), f"{name}({-huge}) = {y}"
        assert np.array_equal(_run(name, huge), huge)


@pytest.mark.parametrize("n", [1, 7, 15, 17, 33, 1000003])
@pytest.mark.parametrize("name", list(REF))
def test_odd_lengths_and_tails(name: str, n: int, level: str) -> None:
    """Lengths that leave vector tails (and, for the large one, multi-threaded chunks whose
    boundaries are not multiples of the vector width): each element must not depend on its
    position, and the error bound holds."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * (4 if name != "log" else 1)).astype(np.float32)
    if name == "log":
        x = np.abs(x)
    got = _run(name, x)
    _check(name, x, got, level)
    for off in (1, 3):
        if n > off:
            assert np.array_equal(_run(name, x[off:]), got[off:], equal_nan=True)


_finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_any32 = st.floats(width=32)


@contextlib.contextmanager
def _at_level(lv: str) -> Iterator[None]:
    old = os.environ.get("MNN_CPU_LEVEL")
    os.environ["MNN_CPU_LEVEL"] = lv
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MNN_CPU_LEVEL", None)
        else:
            os.environ["MNN_CPU_LEVEL"] = old


@given(x=hnp.arrays(np.float32, st.integers(0, 300), elements=st.one_of(
    _any32, st.floats(-20, 20, width=32), st.floats(-120, 100, width=32), _finite32)))
@pytest.mark.parametrize("name", list(REF))
@pytest.mark.parametrize("lv", LEVELS)
def test_hypothesis_arrays(name: str, lv: str, x: np.ndarray) -> None:
    with _at_level(lv):
        got = _run(name, x)
    level = lv
    special = ~np.isfinite(x)
    _check(name, x[~special], got[~special], level)
    if special.any():
        xs = x[special]
        idx = [next(i for i, v in enumerate(_SPECIAL_X) if (math.isnan(v) and math.isnan(s)) or v == s) for s in xs]
        want = np.array(SPECIALS[name], dtype=np.float32)[idx]
        assert np.array_equal(got[special], want, equal_nan=True)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "gelu"])
def test_lazy_fused_and_half_dtypes_use_the_same_kernels(name: str, level: str) -> None:
    """Lazy plans run elementwise chains as fused blocks through the same unary kernel entry;
    float16 inputs are widened to float32 and use the vector kernels too."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 6, 50_000).astype(np.float32)
    eager = (getattr(F, name)(x) * 2).read()
    with F.lazy_eval(True):
        lazy = (getattr(F, name)(F.array(x)) * 2).read()
    np.testing.assert_array_equal(lazy, eager)
    h = x.astype(np.float16)
    got = getattr(F, name)(h).read()
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, _run(name, h.astype(np.float32)).astype(np.float16))


def test_level_env_is_read_in_process() -> None:
    """Every supported level gives results within bounds, and the env var really switches
    kernels (generic has no FMA, so some last bits differ from the SIMD levels)."""
    if len(LEVELS) < 2:
        pytest.skip("only the generic level on this CPU")
    x = np.random.default_rng(1).uniform(-5, 5, 100_000).astype(np.float32)
    outs = {}
    for lv in LEVELS:
        with _at_level(lv):
            outs[lv] = _run("erf", x)
    assert not np.array_equal(outs["generic"], outs[LEVELS[-1]])
