"""MobileNet-style convolutions (depthwise 3x3 stride 1 and 2, 1x1, the 3x3 stride-2 stem) against
torch, at every CPU level the machine has, with the epilogues a MobileNet fuses (bias + ReLU6,
bias + residual add) and a few it does not have a register form for.

The AVX-512 float path for depthwise 3x3 layers (native/src/ops/conv_depthwise.cc) reads the
input itself with masked loads and finishes each output vector in registers
(native/src/ops/conv_regepi.h); these cases reach its edges: planes narrower than a vector, rows
that end mid-vector, odd sizes with stride 2, asymmetric and oversized pads, batches.  Fused and
unfused plans must agree bit for bit (the fused chain runs in registers, the unfused one in
separate elementwise steps).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import mnn_expr as F

torch = pytest.importorskip("torch")

@pytest.fixture
def level(cpu_level):
    """Every CPU level this machine has (tests/conftest.py)."""
    return cpu_level


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _ref(x, w, b, stride, pads, groups):
    """float64 torch conv2d with explicit [top, left, bottom, right] pads."""
    t, left, bottom, right = pads
    xt = torch.nn.functional.pad(torch.from_numpy(x).double(), (left, right, t, bottom))
    return torch.nn.functional.conv2d(xt, torch.from_numpy(w).double(),
                                      None if b is None else torch.from_numpy(b).double(),
                                      stride=stride, groups=groups).numpy()


def _conv(x, w, b, stride, pads, groups):
    ins = [x, w] + ([] if b is None else [b])
    return F.apply("conv2d", ins, stride=[stride, stride], pads=list(pads), dilation=[1, 1], groups=groups)[0]


# (name, N, C, H, W, stride, pads [top, left, bottom, right])
DEPTHWISE = [
    ("s1_wide_rows", 1, 5, 20, 112, 1, (1, 1, 1, 1)),  # whole vectors per row
    ("s1_row_ends_mid_vector", 2, 7, 23, 56, 1, (1, 1, 1, 1)),
    ("s1_narrow", 1, 19, 14, 14, 1, (1, 1, 1, 1)),  # one vector per row, eight rows at a time
    ("s1_tiny", 1, 40, 7, 7, 1, (1, 1, 1, 1)),
    ("s1_one_pixel", 2, 3, 1, 1, 1, (1, 1, 1, 1)),
    ("s1_no_pad", 1, 4, 9, 37, 1, (0, 0, 0, 0)),
    ("s1_uneven_pads", 1, 6, 11, 40, 1, (0, 3, 2, 1)),
    ("s1_pads_past_the_input", 1, 3, 2, 3, 1, (3, 4, 3, 2)),
    ("s2_even", 1, 9, 112, 112, 2, (1, 1, 1, 1)),
    ("s2_odd", 2, 5, 15, 29, 2, (1, 1, 1, 1)),
    ("s2_narrow", 1, 33, 14, 14, 2, (1, 1, 1, 1)),
    ("s2_tf_same", 1, 4, 28, 28, 2, (0, 0, 1, 1)),  # TensorFlow's SAME padding for stride 2
    ("s2_wide_odd", 1, 3, 6, 67, 2, (1, 2, 0, 1)),
]


@pytest.mark.parametrize("case", DEPTHWISE, ids=[c[0] for c in DEPTHWISE])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_depthwise_3x3_matches_torch(case, dtype, level):
    _, N, C, H, W, s, pads = case
    rng = np.random.default_rng(DEPTHWISE.index(case))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    ref = _ref(x, w, b, s, pads, C)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for bias in (b, None):
        got = _conv(F.array(x), F.array(w), None if bias is None else F.array(bias), s, pads, C).read()
        want = ref if bias is not None else ref - b[None, :, None, None]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{case[0]} at {level}")


def _run_both(build, leaves):
    """build(*vars) evaluated lazily with the conv_epilogue pass on and off: results (on) and fused steps."""
    out = {}
    for on in (True, False):
        F.clear_plan_cache()
        vs = [F.array(v) for v in leaves]
        with F.lazy_eval(True), (contextlib.nullcontext() if on else F.passes_disabled("conv_epilogue")):
            res = build(*vs)
            F.evaluate(*res)
            out[on] = ([np.array(r.read()) for r in res], F.last_plan_passes()["conv_epilogue"])
    for a, b in zip(out[True][0], out[False][0]):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    return out[True]


EPILOGUES = {
    # name: (fn on the conv output, torch reference, fused ops)
    "relu6": (lambda y: F.minimum(F.maximum(y, 0.0), 6.0), lambda r: np.clip(r, 0, 6), 2),
    "relu": (F.relu, lambda r: np.maximum(r, 0), 1),
    "clip": (lambda y: F.minimum(F.maximum(y, -1.0), 1.5), lambda r: np.clip(r, -1, 1.5), 2),
    # no register form: the kernel's plain sums, then the epilogue over each channel
    "scale_shift": (lambda y: y * 0.5 - 1.0, lambda r: r * 0.5 - 1.0, 2),
    "max_negative_zero": (lambda y: F.maximum(y, -0.0), lambda r: np.maximum(r, 0), 1),
}


@pytest.mark.parametrize("epi", list(EPILOGUES))
@pytest.mark.parametrize("geom", [(1, 16, 30, 56, 1), (2, 24, 14, 14, 1), (1, 8, 29, 33, 2), (1, 40, 7, 7, 2)],
                         ids=["s1_wide", "s1_narrow_batch", "s2_odd", "s2_tiny"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_depthwise_fused_epilogues(epi, geom, bias, level):
    N, C, H, W, s = geom
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32) * 3
    w = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    fn, ref_fn, n_ops = EPILOGUES[epi]

    def build(x, w, b):
        return [fn(F.conv2d(x, w, b if bias else None, stride=s, padding=1, groups=C))]

    (y,), fused = _run_both(build, [x, w, b])
    assert fused == n_ops
    ref = ref_fn(_ref(x, w, b if bias else None, s, (1, 1, 1, 1), C))
    np.testing.assert_allclose(y, ref, rtol=5e-5, atol=5e-5)


def test_depthwise_relu6_nan_and_signed_zero(level):
    """A NaN input reaches some outputs (ReLU6 keeps it), and a zero channel stays +0.0."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 20, 9, 21)).astype(np.float32)
    x[0, 3, 4, 5] = np.nan
    w = rng.standard_normal((20, 1, 3, 3)).astype(np.float32)
    w[6] = -0.0

    def build(x, w):
        y = F.conv2d(x, w, padding=1, groups=20)
        return [F.minimum(F.maximum(y, 0.0), 6.0), F.relu(F.conv2d(x, w * 2.0, padding=1, groups=20))]

    (r6, r), fused = _run_both(build, [x, w])
    assert fused == 3
    assert np.isnan(r6[0, 3]).sum() == 9 and not np.isnan(r).any()
    assert not np.signbit(r6[0, 6]).any()


@pytest.mark.parametrize("geom", [(16, 112, 96), (24, 56, 144), (160, 7, 960), (320, 7, 1280), (96, 14, 576)],
                         ids=lambda g: f"{g[0]}to{g[2]}_{g[1]}px")
def test_pointwise_relu6_and_residual(geom, level):
    """MobileNetV2's expand (1x1 + bias + ReLU6) and project (1x1 + bias + residual) layers."""
    C, H, O = geom
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C, 1, 1)) / np.sqrt(C)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    w2 = (rng.standard_normal((C, O, 1, 1)) / np.sqrt(O)).astype(np.float32)
    b2 = rng.standard_normal(C).astype(np.float32)

    def build(x, w, b, w2, b2):
        h = F.minimum(F.maximum(F.conv2d(x, w, b), 0.0), 6.0)
        return [h, F.conv2d(h, w2, b2) + x]

    (h, y), fused = _run_both(build, [x, w, b, w2, b2])
    assert fused == 3
    href = np.clip(_ref(x, w, b, 1, (0, 0, 0, 0), 1), 0, 6)
    np.testing.assert_allclose(h, href, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y, _ref(h.astype(np.float32), w2, b2, 1, (0, 0, 0, 0), 1) + x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hw", [224, 37], ids=["224", "37"])
def test_stem_3x3_stride2_relu6(hw, level):
    """The first layer: 3 input channels, 3x3 stride 2, bias + ReLU6."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 3, hw, hw)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    (y,), fused = _run_both(lambda x, w, b: [F.minimum(F.maximum(F.conv2d(x, w, b, stride=2, padding=1), 0.0), 6.0)],
                            [x, w, b])
    assert fused == 2
    np.testing.assert_allclose(y, np.clip(_ref(x, w, b, 2, (1, 1, 1, 1), 1), 0, 6), rtol=1e-4, atol=1e-4)


# (name, N, C, H, W, O, pads) for 3x3 stride-2 layers with few input channels (conv_stem.cc on AVX-512)
STEMS = [
    ("rgb_224", 1, 3, 224, 224, 32, (1, 1, 1, 1)),
    ("gray_odd", 2, 1, 37, 41, 8, (1, 1, 1, 1)),
    ("four_channels_partial_block", 1, 4, 33, 70, 12, (0, 1, 1, 0)),
    ("no_pad_narrow", 1, 2, 35, 33, 9, (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", STEMS, ids=[c[0] for c in STEMS])
def test_stem_geometries(case, level):
    _, N, C, H, W, O, pads = case
    rng = np.random.default_rng(STEMS.index(case) + 20)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    ref = _ref(x, w, b, 2, pads, 1)
    for bias in (b, None):
        got = _conv(F.array(x), F.array(w), None if bias is None else F.array(bias), 2, pads, 1).read()
        want = ref if bias is not None else ref - b[None, :, None, None]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{case[0]} at {level}")


def test_stem_epilogue_without_register_form(level):
    """A chain with no register form (a scale) still fuses, and matches the unfused plan bit for bit."""
    rng = np.random.default_rng(30)
    x = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    (y,), fused = _run_both(lambda x, w, b: [F.conv2d(x, w, b, stride=2, padding=1) * 0.5 + 2.0], [x, w, b])
    assert fused == 2
    np.testing.assert_allclose(y, _ref(x, w, b, 2, (1, 1, 1, 1), 1) * 0.5 + 2.0, rtol=1e-4, atol=1e-4)
