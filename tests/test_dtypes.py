"""Type promotion and half-precision rounding against numpy 2 (NEP 50).

Documented differences (docs/architecture.md "Dtypes and promotion"):
- the default float is float32: an integer/bool array meeting a Python float gives float32
  (numpy: float64), and only-Python-scalar operations give float32;
- int8 + uint8 gives int32 (numpy: int16, which we lack);
- bfloat16 reads back into numpy as float32.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mnn_expr as F

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

DTYPES = ("bool", "int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64")
NP_DTYPES = tuple(d for d in DTYPES if d != "bfloat16")
INTS = ("int8", "uint8", "int32", "int64")


def expected_pair(a: str, b: str) -> str:
    """numpy's promotion of two arrays, with our documented differences."""
    if {a, b} == {"int8", "uint8"}:
        return "int32"
    return np.result_type(np.dtype(a), np.dtype(b)).name


@pytest.mark.parametrize("a,b", list(itertools.product(NP_DTYPES, NP_DTYPES)))
def test_array_array_promotion_matches_numpy(a: str, b: str) -> None:
    want = expected_pair(a, b)
    assert F.result_type(F.zeros(1, a), F.zeros(1, b)) == want
    assert F.promote_types(a, b) == want
    x, y = F.zeros(1, a), F.zeros(1, b)
    if a == b == "bool":  # bool + bool is logical or in numpy; we keep add defined for bools too
        assert (x + y).dtype == "bool"
        return
    assert (x + y).dtype == want
    assert F.add(x, y).dtype == want
    assert (x * y).dtype == want
    assert F.maximum(x, y).dtype == want
    ref = np.maximum(np.zeros(1, a), np.zeros(1, b))
    if want == ref.dtype.name:
        np.testing.assert_array_equal(F.maximum(x, y).read(), ref)


@pytest.mark.parametrize("a,b", list(itertools.product(NP_DTYPES, NP_DTYPES)))
def test_promoted_values_match_numpy(a: str, b: str) -> None:
    rng = np.random.default_rng(0)

    def vals(d: str) -> np.ndarray:
        if d == "bool":
            return rng.integers(0, 2, 6).astype(bool)
        if d in INTS:
            return rng.integers(0 if d == "uint8" else -8, 9, 6).astype(d)
        return rng.uniform(-8, 8, 6).astype(d)

    xa, xb = vals(a), vals(b)
    want = expected_pair(a, b)
    with np.errstate(all="ignore"):
        ref = np.subtract(xa.astype(want), xb.astype(want)) if "bool" not in (a, b) or a != b else None
    if ref is None:
        return
    got = F.array(xa) - F.array(xb)
    assert got.dtype == want
    np.testing.assert_array_equal(got.read(), ref)


def test_comparisons_and_logical_ops_give_bool() -> None:
    for a, b in itertools.product(NP_DTYPES, NP_DTYPES):
        x, y = F.zeros(2, a), F.ones(2, b)
        assert (x < y).dtype == "bool" and (x == y).dtype == "bool"
        assert (x < y).tolist() == (np.zeros(2, a) < np.ones(2, b)).tolist()
        assert F.logical_and(x, y).dtype == "bool"


BF16_PAIRS = {  # unambiguous bfloat16 promotions (torch and JAX agree; numpy has no bfloat16)
    "bool": "bfloat16",
    "int8": "bfloat16",
    "uint8": "bfloat16",
    "bfloat16": "bfloat16",
    "float16": "float32",
    "float32": "float32",
    "float64": "float64",
}


@pytest.mark.parametrize("other", sorted(BF16_PAIRS))
def test_bfloat16_promotion(other: str) -> None:
    want = BF16_PAIRS[other]
    if torch is not None:
        assert str(torch.promote_types(torch.bfloat16, getattr(torch, other))) == f"torch.{want}"
    for x, y in [(F.zeros(1, "bfloat16"), F.zeros(1, other)), (F.zeros(1, other), F.zeros(1, "bfloat16"))]:
        assert F.result_type(x, y) == want
        assert (x + y).dtype == want


# ---- weak Python scalars (NEP 50) -------------------------------------------------------------


SCALARS = [True, False, 0, 1, -1, 7, 1.5, -0.25]


def expected_weak(a: str, s: object) -> str:
    with np.errstate(all="ignore"):
        want = np.add(np.zeros(1, a), s).dtype.name
    if isinstance(s, float) and a in ("bool",) + INTS:
        return "float32"  # documented: our default float
    return want


@pytest.mark.parametrize("a", NP_DTYPES)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_weak_python_scalars_match_numpy(a: str, s: object) -> None:
    if a == "uint8" and not isinstance(s, bool) and isinstance(s, int) and s < 0:
        pytest.skip("out of range for uint8 (see test_out_of_range_python_int)")
    want = expected_weak(a, s)
    x = F.zeros(1, a)
    assert F.result_type(x, s) == want
    assert F.result_type(s, x) == want
    for got in (x + s, s + x, F.add(x, s), F.maximum(x, s), F.where(F.array([True]), x, s)):
        assert got.dtype == want, (a, s, got.dtype)
    ref = np.maximum(np.arange(3).astype(a), s)
    got = F.maximum(F.array(np.arange(3).astype(a)), s)
    np.testing.assert_array_equal(got.read(), ref.astype(want))


@pytest.mark.parametrize("a", ["bfloat16"])
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_weak_scalars_keep_bfloat16(a: str, s: object) -> None:
    assert (F.zeros(1, a) + s).dtype == "bfloat16"
    assert (s * F.ones(1, a)).dtype == "bfloat16"


def test_only_python_scalars() -> None:
    assert F.result_type(1, 2) == "int64"
    assert F.result_type(1.5, 2) == "float32"  # documented float32 default
    assert F.result_type(True, False) == "bool"
    assert F.result_type(True, 2) == "int64"


def test_numpy_scalars_are_strong() -> None:
    """NEP 50: numpy scalars are typed (np.float64 is a subclass of Python float but not weak)."""
    x = F.zeros(1, "float32")
    assert (x + np.float64(1.5)).dtype == np.result_type(np.float32, np.float64)
    assert (F.zeros(1, "int8") + np.int32(3)).dtype == "int32"


@pytest.mark.parametrize(
    "a,s",
    [
        ("uint8", 256),
        ("uint8", -1),
        ("uint8", 300),
        ("int8", 128),
        ("int8", -129),
        ("int8", 1000),
        ("int32", 2**31),
        ("int32", -(2**31) - 1),
        ("int64", 2**63),
        ("int64", -(2**63) - 1),
        ("float32", 2**64),
        ("bool", 2**64),
    ],
)
def test_out_of_range_python_int(a: str, s: int) -> None:
    """NEP 50: a Python int the array's integer dtype cannot hold is an error (numpy: OverflowError;
    ours: ValueError naming the value and dtype). Beyond int64 it is always an error."""
    if a not in ("float32", "bool"):
        with pytest.raises(OverflowError):
            np.add(np.zeros(1, a), s)
    with pytest.raises(ValueError, match=str(s) if abs(s) < 2**63 else "int64"):
        F.zeros(1, a) + s
    with pytest.raises(ValueError):
        s * F.zeros(1, a)


@pytest.mark.parametrize(
    "a,s", [("uint8", 255), ("uint8", 0), ("int8", 127), ("int8", -128), ("int32", 2**31 - 1)]
)
def test_in_range_python_int_keeps_dtype(a: str, s: int) -> None:
    got = F.zeros(2, a) + s
    assert got.dtype == a
    np.testing.assert_array_equal(got.read(), np.zeros(2, a) + s)


def test_float_only_math_on_ints_is_float32() -> None:
    for a in ("bool",) + INTS:
        x = F.array(np.arange(1, 4).astype(a))
        assert F.sqrt(x).dtype == "float32", a
        assert (x / x).dtype == "float32", a
        ref = np.sqrt(np.arange(1, 4).astype(a).astype(np.float32))
        np.testing.assert_allclose(F.sqrt(x).read(), ref, rtol=1e-6)
    for a in ("float16", "float64"):
        assert F.sqrt(F.ones(2, a)).dtype == a
        assert (F.ones(2, a) / F.ones(2, a)).dtype == a


# ---- half precision rounding ------------------------------------------------------------------


def _f32_patterns(n: int = 200_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    edges = np.array(
        [
            0.0,
            -0.0,
            1.0,
            65504.0,
            65519.99,
            65520.0,
            1e9,
            -1e9,
            2.0**-24,
            2.0**-25,
            3 * 2.0**-26,
            2.0**-14,
            2.0**-14 - 2.0**-24,
            1 + 2.0**-11,
            1 + 3 * 2.0**-11,
            1.5 * 2.0**-24,
            np.inf,
            -np.inf,
            np.nan,
        ],
        np.float32,
    )
    odd_nans = np.array([0x7F800001, 0xFF800001, 0x7FC00000, 0x7F801000, 0x7FFFFFFF], np.uint32).view(
        np.float32
    )
    return np.concatenate([bits.view(np.float32), edges, odd_nans])


def _bf16_reference(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 with round-to-nearest-even, NaN kept NaN, as float32 values."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32).copy()
    out[np.isnan(x)] = np.nan
    return out


def test_float16_rounding_from_float32_matches_numpy() -> None:
    x = _f32_patterns()
    with np.errstate(all="ignore"):
        ref = x.astype(np.float16)
    for got in (F.array(x).astype("float16").read(), F.cast(F.asarray(x), "float16").read()):
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, ref)  # NaN == NaN here
        assert np.array_equal(np.signbit(got[~np.isnan(ref)]), np.signbit(ref[~np.isnan(ref)]))


def test_float16_rounding_from_float64_matches_numpy() -> None:
    """Correct rounding float64 -> float16 (numpy rounds once; rounding through float32 rounds twice)."""
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.standard_normal(50_000) * 10.0 ** rng.integers(-8, 6, 50_000),
            np.array(
                [
                    1 + 2.0**-11 + 2.0**-40,
                    1 + 2.0**-11 - 2.0**-40,
                    -(1 + 2.0**-11 + 2.0**-40),
                    65519.99999999,
                    2.0**-25 + 2.0**-60,
                    np.nan,
                    np.inf,
                ]
            ),
        ]
    )
    with np.errstate(all="ignore"):
        ref = x.astype(np.float16)
    got = F.asarray(x).astype("float16").read()
    np.testing.assert_array_equal(got, ref)


def test_bfloat16_rounding_from_float32() -> None:
    x = _f32_patterns()
    got = F.array(x).astype("bfloat16").read()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _bf16_reference(x))
    if torch is not None:
        np.testing.assert_array_equal(got, torch.from_numpy(x).to(torch.bfloat16).float().numpy())


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_round_trip_nan_inf(half: str) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.0, 0.5], np.float32)
    v = F.array(x, dtype=half)
    assert v.dtype == half
    back = v.astype("float32").read()
    assert np.isnan(back[0]) and back[1] == np.inf and back[2] == -np.inf
    np.testing.assert_array_equal(back[3:], x[3:])
    assert np.signbit(back[4]) and not np.signbit(back[3])
    for op in (lambda t: t + 1.0, lambda t: t * 2.0, lambda t: -t, F.abs):  # computed in float32 and narrowed
        r = op(v)
        assert r.dtype == half
        ref = op(F.array(x)).read()
        exp = ref.astype(np.float16).astype(np.float32) if half == "float16" else _bf16_reference(ref)
        np.testing.assert_array_equal(r.astype("float32").read(), exp)


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "maximum"])
def test_float16_arithmetic_matches_numpy(name: str) -> None:
    """Exact: a float16 sum/product/difference computed in float32 and rounded once equals numpy's."""
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(10_000) * 100).astype(np.float16)
    b = (rng.standard_normal(10_000) * 100).astype(np.float16)
    with np.errstate(all="ignore"):
        ref = getattr(np, name)(a, b)
    got = F.BINARY_FUNCS[name](F.array(a), F.array(b)).read()
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, ref)


def test_float_to_int_casts_truncate_like_numpy() -> None:
    x = np.array([2.7, -2.7, 0.5, -0.5, 100.0, -100.0, 126.9], np.float32)
    for dt in ("int8", "int32", "int64"):
        np.testing.assert_array_equal(F.array(x).astype(dt).read(), x.astype(dt))
    np.testing.assert_array_equal(F.array(x).astype("bool").read(), x.astype(bool))
    np.testing.assert_array_equal(
        F.array(np.array([0.0, -0.0, np.nan])).astype("bool").read(), [False, False, True]
    )
