"""GEMM tile-boundary sweep at every CPU dispatch level, and the error cases of the linear
algebra, convolution and pooling ops (the records in tests/records/ cover the values)."""

from __future__ import annotations

import itertools
import platform

import numpy as np
import pytest

import mnn_expr as F
from tests.conftest import cpu_flags

LEVELS = ("generic", "avx2", "avx512")
# Register tiles are 4x8 (generic), 6x16 (avx2), 14x32 / 14x16 (avx512); depth blocks 256.
M_SIZES = (1, 2, 5, 6, 7, 13, 14, 15, 29, 43)
N_SIZES = (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 65)
K_SIZES = (1, 3, 17, 255, 256, 257)


def _cpu_flags() -> set:
    return cpu_flags()


def _check(a: np.ndarray, b: np.ndarray, ta: bool, tb: bool, dtype: str) -> None:
    got = F.matmul(a, b, transpose_a=ta, transpose_b=tb).read()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = (a64.T if ta else a64) @ (b64.T if tb else b64)
    scale = (np.abs(a64.T if ta else a64) @ np.abs(b64.T if tb else b64)) + 1e-30
    eps = 1e-6 if dtype == "float32" else 1e-14
    err = np.max(np.abs(got - ref) / scale) if ref.size else 0.0
    assert err < eps, f"{dtype} ta={ta} tb={tb} a{a.shape} b{b.shape}: relative error {err}"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_tile_boundaries(level: str, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNN_CPU_LEVEL", level)
    rng = np.random.default_rng(0)
    for m, n, k in itertools.product(M_SIZES, N_SIZES, K_SIZES):
        ta, tb = bool((m + n) % 2), bool((n + k) % 2)
        a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(dtype)
        _check(a, b, ta, tb, dtype)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_parallel_partitions(level: str, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes big enough for the multi-threaded task grids."""
    monkeypatch.setenv("MNN_CPU_LEVEL", level)
    rng = np.random.default_rng(1)
    old = F.get_thread_number()
    F.set_thread_number(threads)
    try:
        # Blocked path (row blocks x column parts; rows cut in equal groups per thread, so a
        # group can end in a panel of 2 rows: 256) and the short-and-wide path (rows <= one block).
        sizes = [(257, 129, 300), (1000, 30, 70), (256, 70, 90), (97, 97, 600), (169, 200, 40),
                 (30, 1000, 70), (64, 300, 70), (14, 129, 513), (5, 1000, 3)]
        for (m, n, k), ta, tb in itertools.product(sizes, (False, True), (False, True)):
            a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(np.float32)
            b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(np.float32)
            _check(a, b, ta, tb, "float32")
    finally:
        F.set_thread_number(old)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not {"avx2", "fma"} <= _cpu_flags(),
                    reason="needs an x86 CPU with AVX2 and FMA")
def test_cpu_level_switch_takes_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generic kernel rounds a*b+c in two steps, the FMA kernels in one: results differ in
    the last bits, which shows that MNN_CPU_LEVEL really changes the kernel."""
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, (64, 300)).astype(np.float32)
    b = rng.uniform(-1, 1, (300, 64)).astype(np.float32)
    monkeypatch.setenv("MNN_CPU_LEVEL", "generic")
    generic = F.matmul(a, b).read().copy()
    monkeypatch.setenv("MNN_CPU_LEVEL", "avx2")
    fma = F.matmul(a, b).read().copy()
    assert not np.array_equal(generic, fma)
    np.testing.assert_allclose(generic, fma, rtol=1e-4, atol=1e-4)


def test_batched_matmul_broadcast_large() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (3, 1, 40, 50)).astype(np.float32)
    b = rng.uniform(-1, 1, (4, 50, 30)).astype(np.float32)
    np.testing.assert_allclose(F.matmul(a, b).read(), a @ b, rtol=1e-5, atol=1e-4)
    x = rng.uniform(-1, 1, (5, 7, 64)).astype(np.float32)
    w = rng.uniform(-1, 1, (64, 33)).astype(np.float32)
    np.testing.assert_allclose((F.asarray(x) @ w).read(), x @ w, rtol=1e-5, atol=1e-4)


# ---- errors ------------------------------------------------------------------------------------------


def _conv(x, w, *rest, **attrs):
    base = dict(stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1], groups=1)
    base.update(attrs)
    return F.apply("conv2d", [x, w, *rest], **base)[0]


def test_matmul_errors() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.matmul(F.ones([2, 3]), F.ones([4, 5]))
    with pytest.raises(ValueError):
        F.matmul(F.ones([]), F.ones([3]))
    with pytest.raises(ValueError, match="broadcast"):
        F.matmul(F.ones([2, 3, 4]), F.ones([3, 4, 5]))
    with pytest.raises(ValueError):
        F.matmul(F.ones([3, 2]), F.ones([3, 4]), transposeA=False)
    with pytest.raises(TypeError):
        F.apply("matmul", [F.ones([2, 2], "float32"), F.ones([2, 2], "int32")])
    with pytest.raises(ValueError):
        F.apply("matmul", [F.ones([]), F.ones([])])
    with pytest.raises(ValueError):
        F.ones([2, 3]) @ F.ones([2, 3])


def test_tensordot_einsum_errors() -> None:
    with pytest.raises(ValueError):
        F.tensordot(F.ones([2, 3]), F.ones([4, 5]), axes=1)
    with pytest.raises(ValueError):
        F.tensordot(F.ones([2, 3]), F.ones([3, 5]), axes=([1, 0], [0]))
    with pytest.raises(ValueError):
        F.einsum("ij,jk->ik", F.ones([2, 3]))
    with pytest.raises(ValueError):
        F.einsum("ij,jk->iz", F.ones([2, 3]), F.ones([3, 4]))
    with pytest.raises(ValueError):
        F.einsum("ij,jk->ik", F.ones([2, 3]), F.ones([4, 4]))
    with pytest.raises(ValueError):
        F.einsum("ij", F.ones([2, 3, 4]))
    with pytest.raises(ValueError):
        F.vdot(F.ones([2]), F.ones([3]))


def test_conv_errors() -> None:
    x = F.ones([1, 4, 5, 5])
    with pytest.raises(ValueError, match="divisible"):
        _conv(x, F.ones([6, 4, 3, 3]), groups=3)
    with pytest.raises(ValueError, match="input channels"):
        _conv(x, F.ones([6, 3, 3, 3]))
    with pytest.raises(ValueError, match="larger than the padded input"):
        _conv(x, F.ones([2, 4, 7, 3]))
    with pytest.raises(ValueError, match="larger than the padded input"):
        _conv(x, F.ones([2, 4, 3, 3]), dilation=[3, 1])
    with pytest.raises(ValueError, match="bias"):
        _conv(x, F.ones([2, 4, 3, 3]), F.ones([3]))
    with pytest.raises(ValueError):
        _conv(x, F.ones([2, 4, 3, 3]), stride=[0, 1])
    with pytest.raises(ValueError):
        _conv(x, F.ones([2, 4, 3, 3]), pads=[-1, 0, 0, 0])
    with pytest.raises(ValueError):
        _conv(x, F.ones([2, 4, 3, 3]), pads=[1, 1])
    with pytest.raises(ValueError):
        _conv(F.ones([4, 5]), F.ones([2, 4, 3, 3]))
    with pytest.raises(ValueError):
        _conv(x, F.ones([2, 4, 3]))
    with pytest.raises(TypeError):
        _conv(F.ones([1, 4, 5, 5], "int32"), F.ones([2, 4, 3, 3], "int32"))
    with pytest.raises(TypeError):
        _conv(x, F.ones([2, 4, 3, 3], "float64"))
    with pytest.raises(TypeError):
        F.apply("conv2d", [x], stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1], groups=1)
    with pytest.raises(ValueError):
        F.conv2d(x, F.ones([2, 4, 3, 3]), padding="full")
    with pytest.raises(ValueError):
        F.conv2d(x, F.ones([2, 4, 3, 3]), padding=(1, 2, 3))


def test_conv_transpose_errors() -> None:
    x = F.ones([1, 4, 3, 3])
    with pytest.raises(ValueError, match="output_padding"):
        F.conv2d_transpose(x, F.ones([4, 2, 3, 3]), stride=2, output_padding=2)
    with pytest.raises(ValueError):
        F.conv2d_transpose(x, F.ones([3, 2, 3, 3]))
    with pytest.raises(ValueError, match="divisible"):
        F.conv2d_transpose(x, F.ones([4, 2, 3, 3]), groups=3)
    with pytest.raises(ValueError, match="negative"):
        F.conv2d_transpose(F.ones([1, 4, 1, 1]), F.ones([4, 2, 1, 1]), padding=1)
    with pytest.raises(ValueError, match="bias"):
        F.conv2d_transpose(x, F.ones([4, 2, 3, 3]), F.ones([4]), groups=1)


def test_pool_errors() -> None:
    x = F.ones([1, 2, 4, 4])
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.avg_pool2d(x, (2, 6), 1)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError):
        F.max_pool2d(x, 2, 0)
    with pytest.raises(TypeError):
        F.max_pool2d(F.ones([1, 2, 4, 4], "bool"), 2)
    with pytest.raises(TypeError):
        F.apply("avg_pool2d", [F.ones([1, 2, 4, 4], "int32")], kernel=[2, 2], stride=[2, 2])
    with pytest.raises(ValueError):
        F.max_pool2d(F.ones([4, 4]), 2)


def test_pool_empty_windows_and_nan() -> None:
    # A window of only padding (dilation skips the one real row) is -inf for max.
    x = np.array([[[[1.0, 2.0]]]], np.float32)
    attrs = dict(kernel=[2, 1], stride=[1, 1], pads=[2, 0, 3, 0], dilation=[3, 1])
    got = F.apply("max_pool2d", [x], **attrs)[0].read()
    assert got.shape == (1, 1, 3, 2)
    assert np.isneginf(got[0, 0, :2]).all() and (got[0, 0, 2] == x[0, 0, 0]).all()
    y = np.array([[[[1.0, np.nan], [3.0, 4.0]]]], np.float32)
    assert np.isnan(F.max_pool2d(y, 2).read()).all()
