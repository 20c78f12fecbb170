"""Winograd convolution (native/src/ops/conv_winograd.cc) against a float64 torch reference.

conv2d runs 3x3 stride-1 float32 layers with enough channels through F(m x m, 3 x 3),
m = 2, 4 or 6; MNN_CONV_WINOGRAD=0|2|4|6 forces the tile size for any such layer (0: off).
Each variant, at every CPU level the machine has, must meet its stated error bound per
output element, relative to the sum of |w| * |x| over the output's window (plus |bias| and
|residual| when the epilogue adds them):

    |y - y_ref| <= BOUND[m] * (sum_{c,i,j} |w[o,c,i,j]| |x[n,c,oh+i,ow+j]| + |b[o]| + |r|)

The bounds are about four times the largest error measured over these cases (F(2,3) ~1.5e-7,
F(4,3) ~2.6e-6, F(6,3) ~7e-6; the implicit GEMM path ~1e-7): larger tiles use interpolation
points further from zero (+-2, +-1/2), which costs accuracy.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

import mnn_expr as F
from tests.conftest import cpu_flags

torch = pytest.importorskip("torch")

BOUND = {2: 1e-6, 4: 1e-5, 6: 3e-5}

LEVELS = ["generic"]
if {"avx2", "fma"} <= cpu_flags():
    LEVELS.append("avx2")
    if "avx512f" in cpu_flags():
        LEVELS.append("avx512")

# (name, N, C, H, W, O, pads [top, left, bottom, right])
CASES = [
    ("odd_sizes", 1, 17, 9, 11, 20, (1, 1, 1, 1)),  # tiles cross the bottom and right edges
    ("batch", 3, 33, 13, 7, 47, (1, 1, 1, 1)),
    ("asymmetric_pads", 1, 24, 8, 10, 30, (0, 2, 1, 0)),
    ("no_padding", 2, 40, 6, 5, 17, (0, 0, 0, 0)),  # 4x3 outputs: fewer than one F(6,3) tile
    ("deep", 1, 300, 5, 6, 24, (1, 1, 1, 1)),  # C over one GEMM depth block
    ("tiny", 1, 3, 3, 3, 5, (1, 1, 1, 1)),
    ("wide_rows", 1, 16, 5, 41, 33, (1, 1, 1, 1)),  # many tiles per row: several GEMM panels
    # small weights, many tiles: blocks of tile panels per thread, block edges inside tile rows
    ("blocked", 1, 16, 60, 50, 24, (1, 1, 1, 1)),
    # three panels of tiles (AVX-512) over two threads: a share of 1.5 panels each (a half panel)
    ("three_panels", 1, 20, 16, 20, 36, (1, 1, 1, 1)),
]


@contextlib.contextmanager
def env(**values: str | None):
    """Sets environment variables (None: unset) for the block, restoring them after."""
    before = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ref(x, w, b, pads, res=None):
    """float64 conv (+ bias, + residual) and the magnitude sum the bound scales with."""
    t, left, bottom, right = pads

    def conv(xa, wa):
        xt = torch.nn.functional.pad(torch.from_numpy(xa).double(), (left, right, t, bottom))
        return torch.nn.functional.conv2d(xt, torch.from_numpy(wa).double()).numpy()

    y, mag = conv(x, w), conv(np.abs(x), np.abs(w))
    if b is not None:
        y = y + b[None, :, None, None].astype(np.float64)
        mag = mag + np.abs(b)[None, :, None, None]
    if res is not None:
        y, mag = y + res, mag + np.abs(res)
    return y, mag


def _conv(x, w, b, pads):
    ins = [F.array(x), F.array(w)] + ([] if b is None else [F.array(b)])
    return F.apply("conv2d", ins, stride=[1, 1], pads=list(pads), dilation=[1, 1], groups=1)[0].read()


def _check(got, ref, mag, m, what):
    err = np.abs(got.astype(np.float64) - ref) / mag
    assert got.shape == ref.shape
    assert err.max() <= BOUND[m], f"{what}: max error {err.max():.3g} x sum|w||x| > bound {BOUND[m]}"


@pytest.fixture(autouse=True)
def two_threads():
    """Two threads (blocks of tiles per thread when they spread evenly over them; else three passes)."""
    before = F.get_thread_number()
    F.set_thread_number(2)
    yield
    F.set_thread_number(before)


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_winograd_within_bound(case, m):
    _, N, C, H, W, O, pads = case
    rng = np.random.default_rng(CASES.index(case))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    if CASES.index(case) % 2:  # post-ReLU-like inputs: all of one sign
        x = np.abs(x)
    w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    ref, mag = _ref(x, w, b, pads)
    for level in LEVELS:
        with env(MNN_CPU_LEVEL=level, MNN_CONV_WINOGRAD=str(m)):
            _check(_conv(x, w, b, pads), ref, mag, m, f"F({m},3) {case[0]} at {level}")
            got = _conv(x, w, None, pads)
        ref0, mag0 = _ref(x, w, None, pads)
        _check(got, ref0, mag0, m, f"F({m},3) {case[0]} without bias at {level}")


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("shape", [(2, 24, 11, 10, 18), (1, 16, 60, 50, 20)], ids=["passes", "blocked"])
def test_winograd_fused_epilogue(m, shape):
    """bias + residual + ReLU fused into the output transform: the bits of the unfused ops, within the bound."""
    N, C, H, W, O = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    r = rng.standard_normal((N, O, H, W)).astype(np.float32)
    ref, mag = _ref(x, w, b, (1, 1, 1, 1), r)
    for level in LEVELS:
        outs = []
        for fuse in (True, False):
            F.clear_plan_cache()
            with env(MNN_CPU_LEVEL=level, MNN_CONV_WINOGRAD=str(m)), F.lazy_eval(True), (
                    contextlib.nullcontext() if fuse else F.passes_disabled("conv_epilogue")):
                xv, wv, bv, rv = (F.array(a) for a in (x, w, b, r))
                y = F.relu(F.conv2d(xv, wv, bv, padding=1) + rv)
                outs.append(np.array(y.read()))
        F.clear_plan_cache()
        np.testing.assert_array_equal(outs[0], outs[1])
        err = np.abs(outs[0] - np.maximum(ref, 0)) / mag
        assert err.max() <= BOUND[m], f"F({m},3) fused at {level}: {err.max():.3g}"


def test_winograd_off_and_float64():
    """MNN_CONV_WINOGRAD=0 keeps the implicit GEMM (GEMM-level accuracy); float64 never takes Winograd."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 64, 12, 12))
    w = rng.standard_normal((64, 64, 3, 3))
    ref, mag = _ref(x, w, None, (1, 1, 1, 1))
    with env(MNN_CONV_WINOGRAD="0"):
        err = np.abs(_conv(x.astype(np.float32), w.astype(np.float32), None, (1, 1, 1, 1)) - ref) / mag
    assert err.max() < 5e-7
    with env(MNN_CONV_WINOGRAD="6"):
        np.testing.assert_allclose(_conv(x, w, None, (1, 1, 1, 1)), ref, rtol=1e-11, atol=1e-11)


def test_resnet_layers_by_default():
    """ResNet-18's stride-1 3x3 layers with the tile size chosen by shape, within the loosest bound."""
    rng = np.random.default_rng(4)
    for C, S in [(64, 56), (128, 28), (256, 14), (512, 7)]:
        x = np.maximum(rng.standard_normal((1, C, S, S)), 0).astype(np.float32)
        w = (rng.standard_normal((C, C, 3, 3)) * 0.05).astype(np.float32)
        ref, mag = _ref(x, w, None, (1, 1, 1, 1))
        with env(MNN_CONV_WINOGRAD=None):
            got = _conv(x, w, None, (1, 1, 1, 1))
        err = np.abs(got - ref) / mag
        assert err.max() <= BOUND[6], f"{C}x{S}x{S}: {err.max():.3g}"


def test_winograd_weights_follow_the_weight_tensor():
    """Transformed weights are cached per weight tensor: new values in a new tensor, or in the
    same numpy memory shared without a copy, are seen."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 32, 9, 9)).astype(np.float32)
    wa = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    ref, mag = _ref(x, wa, None, (1, 1, 1, 1))
    xv = F.array(x)
    with env(MNN_CONV_WINOGRAD="4"):
        for scale in (1.0, -2.0):
            w = F.array(wa * scale)
            for _ in range(2):
                err = np.abs(np.array(F.conv2d(xv, w, padding=1).read()) - scale * ref) / mag
                assert err.max() <= BOUND[4] * abs(scale)
        shared = wa.copy()
        ws = F.asarray(shared)
        assert np.abs(np.array(F.conv2d(xv, ws, padding=1).read()) - ref).max() <= BOUND[4] * mag.max()
        shared *= -1
        assert np.abs(np.array(F.conv2d(xv, ws, padding=1).read()) + ref).max() <= BOUND[4] * mag.max()
