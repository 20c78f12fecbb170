"""conv2d's kernel paths against torch, at every CPU level the machine has.

conv2d picks a path per layer (native/src/ops/conv.cc): depthwise (conv_depthwise.cc),
direct for small stride-1 layers (conv_direct.cc) or the implicit GEMM over padded phase
planes with weights packed once per weight tensor (conv_gemm.cc).  Each geometry below
is chosen to reach one of them and its edges: strides and dilations that split the input
into phases, asymmetric pads, channel counts that are not multiples of the register tile,
depths over one GEMM depth block, batches, groups, depth multipliers, unbatched input.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import mnn_expr as F
from mnn_expr import _native
from tests.conftest import cpu_flags

torch = pytest.importorskip("torch")

LEVELS = ["generic"]
if {"avx2", "fma"} <= cpu_flags():
    LEVELS.append("avx2")
    if "avx512f" in cpu_flags():
        LEVELS.append("avx512")

# (name, N, C, H, W, O, kh, kw, stride, pads [top, left, bottom, right], dilation, groups)
CASES = [
    ("pointwise", 1, 16, 7, 9, 40, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ("pointwise_s2", 2, 8, 9, 11, 24, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1),
    ("pointwise_padded", 1, 20, 5, 6, 9, 1, 1, (1, 1), (1, 0, 0, 2), (1, 1), 1),
    ("3x3", 1, 64, 10, 12, 30, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ("3x3_s2", 1, 32, 11, 13, 33, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ("7x7_s2_stem", 1, 3, 30, 34, 16, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),
    ("mixed_geometry", 1, 40, 12, 15, 20, 3, 2, (2, 1), (0, 2, 1, 0), (2, 1), 1),
    ("stride3_dilated", 2, 30, 17, 16, 15, 3, 3, (3, 2), (2, 1, 0, 3), (2, 3), 1),
    ("groups", 2, 32, 9, 9, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    ("deep", 1, 300, 5, 5, 20, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # K = 2700: several depth blocks
    ("many_channels", 1, 40, 6, 7, 203, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # O not a tile multiple
    ("wide", 1, 36, 23, 29, 17, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    # few positions, deep: positions become the GEMM's rows (the transposed product)
    ("small_spatial", 1, 128, 7, 7, 96, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ("small_spatial_groups_batch", 2, 64, 7, 7, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    ("small_spatial_1x1_s2", 1, 200, 13, 13, 300, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1),
    # stride 1, as many output as input columns: the input itself, padding taps masked off
    ("same_dilated", 1, 40, 20, 21, 24, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),
    ("same_5x5_uneven_rows", 2, 24, 17, 30, 20, 5, 5, (1, 1), (1, 2, 3, 2), (1, 1), 1),
    ("direct_small", 2, 4, 9, 10, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ("depthwise", 1, 24, 14, 14, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 24),
    ("depthwise_s2", 2, 16, 15, 12, 16, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 16),
    ("depthwise_multiplier", 1, 8, 10, 11, 16, 3, 3, (1, 1), (0, 1, 2, 1), (1, 1), 8),
    ("depthwise_5x5_dilated", 1, 12, 16, 13, 12, 5, 5, (1, 2), (4, 4, 4, 4), (2, 2), 12),
    ("depthwise_1x1", 1, 10, 6, 5, 10, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 10),
    # at most 64 output positions: channels as vectors (a partial last block of channels)
    ("depthwise_small_plane", 1, 40, 7, 7, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 40),
    ("depthwise_small_dilated", 2, 20, 9, 8, 20, 3, 3, (2, 1), (2, 0, 1, 2), (2, 2), 20),
    ("depthwise_wide_row", 1, 4, 3, 70, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),
]


def _torch_conv(x, w, b, stride, pads, dilation, groups):
    t, left, bottom, right = pads
    xt = torch.nn.functional.pad(torch.from_numpy(x).double(), (left, right, t, bottom))
    return torch.nn.functional.conv2d(xt, torch.from_numpy(w).double(),
                                      None if b is None else torch.from_numpy(b).double(),
                                      stride=stride, dilation=dilation, groups=groups).numpy()


def _ours(x, w, b, stride, pads, dilation, groups):
    ins = [F.array(x), F.array(w)] + ([] if b is None else [F.array(b)])
    return F.apply("conv2d", ins, stride=list(stride), pads=list(pads), dilation=list(dilation),
                   groups=groups)[0].read()


@pytest.fixture
def cpu_level():
    """Sets MNN_CPU_LEVEL for the test (read on every kernel call), restoring it after."""
    before = os.environ.get("MNN_CPU_LEVEL")

    def set_level(level: str) -> None:
        os.environ["MNN_CPU_LEVEL"] = level

    yield set_level
    if before is None:
        os.environ.pop("MNN_CPU_LEVEL", None)
    else:
        os.environ["MNN_CPU_LEVEL"] = before


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_paths_match_torch(case, dtype, cpu_level):
    _, N, C, H, W, O, kh, kw, stride, pads, dilation, groups = case
    rng = np.random.default_rng(CASES.index(case))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    ref = _torch_conv(x, w, b, stride, pads, dilation, groups)
    tol = 1e-4 * np.sqrt(C // groups * kh * kw) if dtype == "float32" else 1e-11
    for level in LEVELS:
        cpu_level(level)
        for bias in (b, None):
            got = _ours(x, w, bias, stride, pads, dilation, groups)
            want = ref if bias is not None else ref - b[None, :, None, None]
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{case[0]} at {level}")


def test_conv2d_unbatched_and_zero_sized():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 9, 8)).astype(np.float32)
    w = rng.standard_normal((12, 40, 3, 3)).astype(np.float32)
    got = F.conv2d(F.array(x), F.array(w), padding=1).read()
    ref = torch.nn.functional.conv2d(torch.from_numpy(x[None]), torch.from_numpy(w), padding=1).numpy()[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    empty = F.conv2d(F.array(np.zeros((0, 40, 9, 8), np.float32)), F.array(w), padding=1)
    assert empty.shape == (0, 12, 9, 8) and empty.read().size == 0


def test_packed_weights_follow_the_weight_tensor():
    """Packed weights are cached per weight tensor: reused while it lives, dropped with it,
    never kept for bytes someone may rewrite (a numpy array shared without a copy)."""
    rng = np.random.default_rng(1)
    x = F.array(rng.standard_normal((1, 64, 10, 10)).astype(np.float32))
    wa = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
    _native.clear_packed_weights()
    gc.collect()
    base = _native.packed_weight_bytes()
    w = F.array(wa)
    ref = _torch_conv(np.array(x.read()), wa, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    for _ in range(2):  # packed on first use, then reused
        np.testing.assert_allclose(F.conv2d(x, w, padding=1).read(), ref, rtol=1e-4, atol=1e-3)
        assert _native.packed_weight_bytes() > base
    w2 = F.array(wa * 2)  # same shape, other values: its own entry
    np.testing.assert_allclose(F.conv2d(x, w2, padding=1).read(), 2 * ref, rtol=1e-4, atol=2e-3)
    del w, w2
    gc.collect()
    assert _native.packed_weight_bytes() == base

    shared = wa.copy()
    ws = F.asarray(shared)  # shares the array's memory: later writes must be seen
    np.testing.assert_allclose(F.conv2d(x, ws, padding=1).read(), ref, rtol=1e-4, atol=1e-3)
    shared *= -1
    np.testing.assert_allclose(F.conv2d(x, ws, padding=1).read(), -ref, rtol=1e-4, atol=1e-3)
    assert _native.packed_weight_bytes() == base


def test_packed_weights_of_a_computed_weight_in_lazy_plans():
    """A weight computed inside a lazy plan lives in the plan's arena, rewritten every run."""
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
    wp = F.placeholder([32, 64, 3, 3], "float32")
    x = F.array(xa)
    for scale in (1.0, -3.0, 0.5):
        wa = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
        wp.write(wa)
        with F.lazy_eval(True):
            y = F.relu(F.conv2d(x, wp * scale + 1.0, padding=1)) * 2.0
            got = y.read()
        ref = 2 * np.maximum(_torch_conv(xa, wa * scale + 1, None, (1, 1), (1, 1, 1, 1), (1, 1), 1), 0)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape,k,s,p", [((2, 3, 13, 17), 3, 2, 1), ((1, 2, 9, 9), 2, 2, 0), ((1, 4, 8, 31), 3, 1, 1),
                                         ((1, 1, 7, 40), 3, 3, 1), ((1, 64, 112, 112), 3, 2, 1),
                                         ((2, 3, 41, 37), 3, 1, 1)])  # (large planes: bands of rows per thread)
def test_max_pool_vectors_match_torch_with_nan_and_inf(shape, k, s, p, cpu_level):
    """Max pooling (separable, in vectors of the level's lanes; stride 2 by even-lane shuffles):
    NaN wins, -inf and the padding never do, as torch."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[rng.integers(0, x.size, 7)] = np.nan
    x.flat[rng.integers(0, x.size, 7)] = -np.inf
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p).numpy()
    got = np.array(F.max_pool2d(F.array(x), k, s, p).read())
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])
