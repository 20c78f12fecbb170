"""Records for random numbers, checked bit-for-bit against a NumPy model of the
native generator (Philox4x32-10; the element mapping is documented in
native/src/ops/random.cc), in eager and lazy mode.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from tests.op_records import OpRecord

_MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(counter_lo, counter_hi: int, key: int) -> np.ndarray:
    """Philox4x32-10 of counters ``(counter_lo[i], counter_hi)`` under ``key``: uint32 array [4, n]."""
    lo = np.asarray(counter_lo, dtype=np.uint64)
    c0, c1 = lo & _MASK, lo >> np.uint64(32)
    c2 = np.full_like(lo, counter_hi & 0xFFFFFFFF)
    c3 = np.full_like(lo, (counter_hi >> 32) & 0xFFFFFFFF)
    k0, k1 = key & 0xFFFFFFFF, (key >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & _MASK,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & _MASK,
        )
        k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def _words(n: int, per_block: int, seed: int, offset: int) -> np.ndarray:
    """The words of blocks 0..ceil(n / per_block) - 1 as [blocks, 4]."""
    blocks = -(-n // per_block)
    return philox4x32_10(np.arange(blocks, dtype=np.uint64), offset, seed).T


def _u24(w):
    return (w >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def _u53(hi, lo):
    return ((hi.astype(np.uint64) << np.uint64(32) | lo.astype(np.uint64)) >> np.uint64(11)).astype(
        np.float64
    ) * 2.0**-53


def ref_uniform(shape, dtype="float32", low=0.0, high=1.0, seed=0, offset=0) -> np.ndarray:
    n = math.prod(shape)
    if dtype == "float64":
        w = _words(n, 2, seed, offset)
        u = np.stack([_u53(w[:, 0], w[:, 1]), _u53(w[:, 2], w[:, 3])], axis=1).reshape(-1)[:n]
        v = low + (high - low) * u
        if high > low:
            v = np.where(v < high, v, np.nextafter(high, -np.inf))
        return np.maximum(v, low).reshape(shape)
    w = _words(n, 4, seed, offset).reshape(-1)[:n]
    u = _u24(w)
    if dtype == "float32":
        th = np.float32(high)
        top = np.nextafter(th, np.float32(-np.inf)) if high > low else np.float32(low)
        v = np.float32(low) + np.float32(high - low) * u
        return np.where(v < top, v, top).astype(np.float32).reshape(shape)
    # float16: computed in double, rounded to float32 then float16, kept below high
    v = (low + (high - low) * u.astype(np.float64)).astype(np.float32).astype(np.float16)
    if high > low:
        fh = np.float32(high)
        for _ in range(4):
            bad = v.astype(np.float32) >= fh
            v = np.where(bad, np.nextafter(v, np.float16(-np.inf)), v)
        v = np.where(v.astype(np.float32) < np.float32(low), np.float16(np.float32(low)), v)
    return v.reshape(shape)


def ref_normal(shape, dtype="float32", mean=0.0, std=1.0, seed=0, offset=0) -> np.ndarray:
    n = math.prod(shape)
    if dtype == "float64":
        w = _words(n, 2, seed, offset)
        r = np.sqrt(-2.0 * np.log(_u53(w[:, 0], w[:, 1]) + 2.0**-53))
        t = 2 * np.pi * _u53(w[:, 2], w[:, 3])
        z = np.stack([mean + std * r * np.cos(t), mean + std * r * np.sin(t)], axis=1)
        return z.reshape(-1)[:n].reshape(shape)
    w = _words(n, 4, seed, offset)
    f32 = np.float32
    zs = []
    for j in range(2):
        u1 = ((w[:, 2 * j] >> np.uint32(8)).astype(f32) + f32(1)) * f32(2.0**-24)
        r = np.sqrt(f32(-2) * np.log(u1))
        t = f32(2 * np.pi) * _u24(w[:, 2 * j + 1])
        zs += [f32(mean) + f32(std) * r * np.cos(t), f32(mean) + f32(std) * r * np.sin(t)]
    z = np.stack(zs, axis=1).reshape(-1)[:n].astype(np.float32)
    return (z if dtype == "float32" else z.astype(np.float16)).reshape(shape)


# ---- records ----------------------------------------------------------------------------------

_SEEDS = st.integers(0, 2**63 - 1)
_SHAPE = st.lists(st.integers(0, 9), max_size=3).map(tuple)
_RDTYPES = ("float32", "float64", "float16")


def _prim_params(shp):
    bounds = st.tuples(st.floats(-100, 100), st.floats(0, 50)).map(lambda t: (t[0], t[0] + t[1]))
    return st.fixed_dictionaries(
        {
            "shape": _SHAPE,
            "dtype": st.sampled_from(_RDTYPES),
            "bounds": bounds,
            "seed": _SEEDS,
            "offset": st.integers(0, 2**40),
        }
    )


def _uniform_prim(F, shape, dtype, bounds, seed, offset):
    return F.apply(
        "random_uniform",
        [],
        shape=list(shape),
        dtype=dtype,
        low=bounds[0],
        high=bounds[1],
        seed=seed,
        offset=offset,
    )[0]


def _normal_prim(F, shape, dtype, bounds, seed, offset):
    return F.apply(
        "random_normal",
        [],
        shape=list(shape),
        dtype=dtype,
        mean=bounds[0],
        std=bounds[1] - bounds[0],
        seed=seed,
        offset=offset,
    )[0]


def _gen_params(shp):
    return st.fixed_dictionaries({"seed": st.integers(0, 2**70), "size": _SHAPE})


def _seed63(s):
    out = 0
    while True:
        out ^= s & (2**63 - 1)
        s >>= 63
        if not s:
            return out


def _ref_integers(seed, size, low=-5, high=17):
    u = ref_uniform(size, "float64", float(low), float(high), _seed63(seed), 0)
    return np.floor(u).astype(np.int64)


RECORDS = [
    OpRecord(
        "random_uniform",
        _uniform_prim,
        lambda shape, dtype, bounds, seed, offset: ref_uniform(
            shape, dtype, bounds[0], bounds[1], seed, offset
        ),
        nargs=0,
        shapes=st.just(()),
        dtypes=("float32",),
        params=_prim_params,
        result_dtype=lambda d, p: p["dtype"],
        rtol=1e-6,
        atol=0,
        covers=("random_uniform",),
    ),
    OpRecord(
        "random_normal",
        _normal_prim,
        lambda shape, dtype, bounds, seed, offset: ref_normal(
            shape, dtype, bounds[0], bounds[1] - bounds[0], seed, offset
        ),
        nargs=0,
        shapes=st.just(()),
        dtypes=("float32",),
        params=_prim_params,
        result_dtype=lambda d, p: p["dtype"],
        rtol=1e-5,
        atol=1e-4,
        covers=("random_normal",),
    ),
    OpRecord(
        "Generator.uniform",
        lambda F, seed, size: F.random.Generator(seed).uniform(-2.0, 3.0, size=size),
        lambda seed, size: ref_uniform(size, "float32", -2.0, 3.0, _seed63(seed), 0),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float32",
        rtol=1e-6,
        atol=0,
        covers=("random_uniform",),
    ),
    OpRecord(
        "Generator.normal",
        lambda F, seed, size: F.random.Generator(seed).normal(1.0, 2.0, size=size, dtype="float64"),
        lambda seed, size: ref_normal(size, "float64", 1.0, 2.0, _seed63(seed), 0),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float64",
        rtol=1e-12,
        atol=1e-12,
        covers=("random_normal",),
    ),
    OpRecord(
        "Generator.integers",
        lambda F, seed, size: F.random.Generator(seed).integers(-5, 17, size=size),
        _ref_integers,
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "int64",
        covers=("random_uniform", "floor", "cast"),
    ),
    OpRecord(
        "Generator.bernoulli",
        lambda F, seed, size: F.random.Generator(seed).bernoulli(0.3, size=size),
        lambda seed, size: (ref_uniform(size, "float64", 0.0, 1.0, _seed63(seed), 0) < 0.3).astype(
            np.float32
        ),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float32",
        covers=("random_uniform", "less", "cast"),
    ),
    OpRecord(
        "Generator.permutation",
        lambda F, seed, size: F.random.Generator(seed).permutation(math.prod(size)),
        lambda seed, size: np.argsort(
            ref_uniform([math.prod(size)], "float64", 0.0, 1.0, _seed63(seed), 0), kind="stable"
        ),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "int64",
        covers=("random_uniform", "sort"),
    ),
    OpRecord(
        "random.rand",
        lambda F, seed, size: (F.random.seed(seed), F.random.rand(*size))[1],
        lambda seed, size: ref_uniform(size, "float32", 0.0, 1.0, _seed63(seed), 0),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float32",
        rtol=1e-6,
        atol=0,
        covers=("random_uniform",),
    ),
    OpRecord(
        "random.randn",
        lambda F, seed, size: (F.random.seed(seed), F.randn(*size))[1],
        lambda seed, size: ref_normal(size, "float32", 0.0, 1.0, _seed63(seed), 0),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float32",
        rtol=1e-5,
        atol=1e-4,
        covers=("random_normal",),
    ),
    OpRecord(
        "randomuniform",
        lambda F, seed, size: F.randomuniform(size, F.float, 1.0, 4.0, seed % 1000, 7),
        lambda seed, size: ref_uniform(size, "float32", 1.0, 4.0, ((seed % 1000) << 32) ^ 7, 0),
        nargs=0,
        shapes=st.just(()),
        params=_gen_params,
        result_dtype=lambda d, p: "float32",
        rtol=1e-6,
        atol=0,
        covers=("random_uniform",),
    ),
]
