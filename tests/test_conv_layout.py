"""The layout pass: chains of convolutions exchange channel-blocked values (NCHW16c).

native/src/graph/layout_pass.cc picks the convolutions whose outputs are stored as
[N, ceil(C/16), H, W, 16] (every reader a convolution with a blocked kernel, as its input or as
a same-shape epilogue operand of a blocked output); ops/conv_blocked.cc runs them: 1x1,
depthwise (any window, stride, padding, dilation) and small dense stems, reading and writing
either layout at a chain's ends.  Checked against float64 torch at every CPU level, with the
pass on and off, on channel counts that are not multiples of 16 (padding lanes), batches,
chain ends of every kind, and the cases the pass must leave alone.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import mnn_expr as F
from mnn_expr import _native
from tests.conftest import cpu_levels

torch = pytest.importorskip("torch")
tnn = torch.nn.functional

@pytest.fixture(autouse=True)
def _blocked_at_every_level(monkeypatch):
    """The pass blocks at AVX-512 only (where the kernels pay); these tests run the blocked kernels'
    variants at every level."""
    monkeypatch.setenv("MNN_LAYOUT_ALL_LEVELS", "1")


@pytest.fixture
def level(cpu_level):
    """Every CPU level this machine has (tests/conftest.py)."""
    return cpu_level


def _lazy(build, leaves, layout=True):
    """build(*vars) evaluated lazily (one plan) with the layout pass on or off: (results, steps blocked)."""
    F.clear_plan_cache()
    with F.lazy_eval(True), (contextlib.nullcontext() if layout else F.passes_disabled("layout")):
        res = build(*[F.array(v) for v in leaves])
        res = res if isinstance(res, (list, tuple)) else [res]
        F.evaluate(*res)
        return [np.array(r.read()) for r in res], F.last_plan_passes()["layout"]


def _check(build, ref, leaves, blocked, tol=2e-5):
    """Layout on: `blocked` convolutions run blocked; on and off both match the float64 reference."""
    want = ref(*[torch.from_numpy(v).double() for v in leaves])
    want = want if isinstance(want, (list, tuple)) else [want]
    for layout in (True, False):
        got, n = _lazy(build, leaves, layout)
        assert n == (blocked if layout else 0)
        for g, w in zip(got, want):
            w = w.numpy()
            assert g.shape == w.shape
            scale = max(1.0, float(np.abs(w).max()))
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, err_msg=f"layout={layout}")


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _relu6(y):
    return F.minimum(F.maximum(y, 0.0), 6.0)


# An inverted residual block: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 project (+ residual).
def _block(x, w1, b1, w2, b2, w3, b3, stride):
    y = _relu6(F.conv2d(x, w1, b1))
    y = _relu6(F.conv2d(y, w2, b2, stride=stride, padding=1, groups=w2.shape[0]))
    y = F.conv2d(y, w3, b3)
    return y + x if stride == 1 and y.shape == x.shape else y


def _block_ref(x, w1, b1, w2, b2, w3, b3, stride):
    y = torch.clamp(tnn.conv2d(x, w1, b1), 0, 6)
    y = torch.clamp(tnn.conv2d(y, w2, b2, stride=stride, padding=1, groups=w2.shape[0]), 0, 6)
    y = tnn.conv2d(y, w3, b3)
    return y + x if stride == 1 and y.shape == x.shape else y


BLOCKS = [  # (N, C, H, W, expanded, stride)
    (1, 24, 14, 14, 144, 1),
    (2, 16, 9, 11, 40, 2),
    (1, 32, 7, 7, 96, 1),
    (1, 8, 5, 5, 20, 1),
    (3, 3, 6, 4, 7, 1),
    (1, 17, 16, 16, 33, 2),
    # rows of >= 28 pixels: the 1x1 expand runs inside the depthwise step, row by row
    (1, 16, 30, 28, 40, 1),
    (2, 24, 29, 33, 48, 2),
    (1, 8, 28, 57, 20, 2),
]


@pytest.mark.parametrize("geom", BLOCKS, ids=lambda g: "x".join(map(str, g)))
def test_two_inverted_residual_blocks(geom, level):
    """Two blocks in a chain (the first's output feeds the second and its residual)."""
    n, c, h, w, e, s = geom
    rng = np.random.default_rng(sum(geom))
    p = [_rand(rng, e, c, 1, 1, scale=0.3), _rand(rng, e), _rand(rng, e, 1, 3, 3, scale=0.3), _rand(rng, e),
         _rand(rng, c, e, 1, 1, scale=0.3), _rand(rng, c)]
    x = _rand(rng, n, c, h, w)

    def build(x, *p):
        return _block(_block(x, *p, 1), *p, s)

    def ref(x, *p):
        return _block_ref(_block_ref(x, *p, 1), *p, s)
    _check(build, ref, [x, *p], blocked=6)


def test_stem_chain_and_pooled_head(level):
    """A MobileNet head and tail: 3x3 stride-2 stem (3 channels, NCHW in) -> depthwise -> 1x1 -> 1x1
    whose output is read by a mean (the chain's last convolution writes NCHW)."""
    rng = np.random.default_rng(1)
    leaves = [_rand(rng, 2, 3, 23, 19), _rand(rng, 20, 3, 3, 3, scale=0.3), _rand(rng, 20),
              _rand(rng, 20, 1, 3, 3, scale=0.3), _rand(rng, 20), _rand(rng, 12, 20, 1, 1, scale=0.3), _rand(rng, 12),
              _rand(rng, 40, 12, 1, 1, scale=0.3), _rand(rng, 40)]

    def build(x, ws, bs, wd, bd, wp, bp, wl, bl):
        y = _relu6(F.conv2d(x, ws, bs, stride=2, padding=1))
        y = _relu6(F.conv2d(y, wd, bd, padding=1, groups=20))
        y = F.conv2d(F.conv2d(y, wp, bp), wl, bl)
        return F.mean(F.relu(y), axis=[2, 3])

    def ref(x, ws, bs, wd, bd, wp, bp, wl, bl):
        y = torch.clamp(tnn.conv2d(x, ws, bs, stride=2, padding=1), 0, 6)
        y = torch.clamp(tnn.conv2d(y, wd, bd, padding=1, groups=20), 0, 6)
        y = tnn.conv2d(tnn.conv2d(y, wp, bp), wl, bl)
        return torch.relu(y).mean(dim=(2, 3))
    _check(build, ref, leaves, blocked=4)


def test_chain_ends_in_depthwise_and_starts_with_depthwise(level):
    """Depthwise kernels read blocked only: a chain that starts (NCHW input) or ends (NCHW output)
    with one goes through their reorders; dilation and asymmetric stride too."""
    rng = np.random.default_rng(2)
    leaves = [_rand(rng, 1, 21, 13, 12), _rand(rng, 21, 1, 3, 3), _rand(rng, 30, 21, 1, 1, scale=0.3),
              _rand(rng, 30, 1, 5, 3), _rand(rng, 30)]

    def build(x, wd1, wp, wd2, bd2):
        y = F.conv2d(x, wd1, None, padding=2, dilation=2, groups=21)
        y = F.conv2d(y, wp)
        return F.conv2d(y, wd2, bd2, stride=[2, 1], padding=[1, 2], groups=30) * 2.0

    def ref(x, wd1, wp, wd2, bd2):
        y = tnn.conv2d(x, wd1, None, padding=2, dilation=2, groups=21)
        y = tnn.conv2d(y, wp)
        return tnn.conv2d(y, wd2, bd2, stride=(2, 1), padding=(1, 2), groups=30) * 2.0
    _check(build, ref, leaves, blocked=3)


def test_dense_stem_reading_a_blocked_input(level):
    """A dense kernel (<= 4 input channels) after a 1x1 reads the blocked value."""
    rng = np.random.default_rng(3)
    leaves = [_rand(rng, 2, 9, 10, 10), _rand(rng, 4, 9, 1, 1), _rand(rng, 18, 4, 3, 3), _rand(rng, 18),
              _rand(rng, 5, 18, 1, 1)]

    def build(x, w1, w2, b2, w3):
        return F.conv2d(F.relu(F.conv2d(F.conv2d(x, w1), w2, b2, padding=1)), w3)

    def ref(x, w1, w2, b2, w3):
        return tnn.conv2d(torch.relu(tnn.conv2d(tnn.conv2d(x, w1), w2, b2, padding=1)), w3)
    _check(build, ref, leaves, blocked=3)


def test_left_alone():
    """No blocked step where a value leaves the chain: a result, a non-convolution reader, a
    per-channel epilogue operand, a residual from outside the chain, a lone convolution, float64,
    and a 3x3 dense layer with many channels (no blocked kernel)."""
    rng = np.random.default_rng(4)
    x = _rand(rng, 1, 16, 8, 8)
    w = _rand(rng, 16, 16, 1, 1, scale=0.3)
    scale = _rand(rng, 16, 1, 1)
    w3 = _rand(rng, 16, 16, 3, 3, scale=0.1)
    cases = {
        "result": (lambda x, w, s, w3: [F.conv2d(x, w), F.conv2d(F.conv2d(x, w), w)], 0),
        "reader": (lambda x, w, s, w3: F.conv2d(F.conv2d(x, w), w) + F.sum(F.conv2d(x, w)), 0),
        "channel": (lambda x, w, s, w3: F.conv2d(F.conv2d(x, w) * s, w), 0),
        "outside_residual": (lambda x, w, s, w3: F.conv2d(F.conv2d(x, w) + x, w), 0),
        "lone": (lambda x, w, s, w3: F.relu(F.conv2d(x, w)), 0),
        "dense3x3": (lambda x, w, s, w3: F.conv2d(F.conv2d(x, w3, padding=1), w3, padding=1), 0),
    }
    for name, (build, blocked) in cases.items():
        on, n_on = _lazy(build, [x, w, scale, w3])
        off, _ = _lazy(build, [x, w, scale, w3], layout=False)
        assert n_on == blocked, name
        for a, b in zip(on, off):
            np.testing.assert_array_equal(a, b, err_msg=name)
    x64 = x.astype(np.float64)
    _, n = _lazy(lambda x, w: F.conv2d(F.conv2d(x, w), w), [x64, w.astype(np.float64)])
    assert n == 0


def test_same_structure_other_attributes_replans():
    """Plans are keyed by structure: a depthwise layer with other padding and dilation but the same
    shapes must not reuse the blocked plan's kernels blindly (the pass guards the attributes)."""
    rng = np.random.default_rng(5)
    x, w1, wd = _rand(rng, 1, 8, 9, 9), _rand(rng, 8, 8, 1, 1), _rand(rng, 8, 1, 3, 3)
    for pad, dil in [(1, 1), (2, 2), (1, 1)]:
        def build(x, w1, wd, pad=pad, dil=dil):
            return F.conv2d(F.conv2d(x, w1), wd, padding=pad, dilation=dil, groups=8)
        got, n = _lazy(build, [x, w1, wd])
        want = tnn.conv2d(tnn.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w1).double()),
                          torch.from_numpy(wd).double(), padding=pad, dilation=dil, groups=8).numpy()
        assert n == 2
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_nonfinite_values_stay_in_their_channels(level):
    """inf and NaN in real channels propagate as in NCHW; the padding lanes (24 -> 32) stay zero, so
    the next 1x1 layer (padding lanes x zero weights) gets no NaN from them."""
    x = np.ones((1, 24, 4, 4), np.float32)
    x[0, 3, 1, 1] = np.inf
    x[0, 5, 2, 2] = np.nan
    w1 = np.eye(24, dtype=np.float32).reshape(24, 24, 1, 1)
    w2 = np.ones((8, 24, 1, 1), np.float32)
    w2[:, 3] = 0.0
    w2[:, 5] = 0.0
    on, n = _lazy(lambda x, a, b: F.conv2d(F.minimum(F.conv2d(x, a), 6.0), b), [x, w1, w2])
    off, _ = _lazy(lambda x, a, b: F.conv2d(F.minimum(F.conv2d(x, a), 6.0), b), [x, w1, w2], layout=False)
    assert n == 2
    np.testing.assert_array_equal(on[0], off[0])


def test_blocked_only_where_it_pays(level, monkeypatch):
    """By default the pass blocks at AVX-512 only (ops/conv_blocked.h: below it the NCHW kernels are
    faster); the results are the same either way."""
    monkeypatch.delenv("MNN_LAYOUT_ALL_LEVELS")
    n, c, h, w, e, _ = BLOCKS[0]
    rng = np.random.default_rng(7)
    p = [_rand(rng, e, c, 1, 1, scale=0.3), _rand(rng, e), _rand(rng, e, 1, 3, 3, scale=0.3), _rand(rng, e),
         _rand(rng, c, e, 1, 1, scale=0.3), _rand(rng, c)]
    x = _rand(rng, n, c, h, w)
    _check(lambda x, *p: _block(_block(x, *p, 1), *p, 1), lambda x, *p: _block_ref(_block_ref(x, *p, 1), *p, 1),
           [x, *p], blocked=6 if level == "avx512" else 0)


@pytest.mark.skipif("avx512" not in cpu_levels(), reason="needs a CPU with AVX-512")
def test_a_level_change_replans(monkeypatch):
    """A cached plan (and a loaded model's prepared one) keeps its blocked steps only while the CPU
    level it was made at is in force."""
    monkeypatch.delenv("MNN_LAYOUT_ALL_LEVELS")
    n, c, h, w, e, _ = BLOCKS[0]
    rng = np.random.default_rng(8)
    p = [F.array(v) for v in (_rand(rng, e, c, 1, 1), _rand(rng, e), _rand(rng, e, 1, 3, 3), _rand(rng, e),
                              _rand(rng, c, e, 1, 1), _rand(rng, c))]
    x = F.array(_rand(rng, n, c, h, w))
    F.clear_plan_cache()
    results = {}
    for lvl in ("avx512", "avx2", "avx512"):
        monkeypatch.setenv("MNN_CPU_LEVEL", lvl)
        with F.lazy_eval(True):
            y = _block(x, *p, 1)
            got = np.array(y.read())
        results.setdefault(lvl, []).append((got, F.last_plan_passes()["layout"]))
    assert [b for _, b in results["avx512"]] == [3, 3] and results["avx2"][0][1] == 0
    np.testing.assert_allclose(results["avx2"][0][0], results["avx512"][0][0], rtol=1e-5, atol=1e-5)


def test_profile_names_blocked_steps():
    """The profiler shows blocked steps as conv2d[nchw16c] with their stored (5-d) infos."""
    rng = np.random.default_rng(6)
    x, w1, w2 = _rand(rng, 1, 20, 6, 6), _rand(rng, 40, 20, 1, 1), _rand(rng, 40, 1, 3, 3)
    F.clear_plan_cache()
    _native.set_profiling(True)
    _native.profile_reset()
    try:
        with F.lazy_eval(True):
            F.conv2d(F.conv2d(F.array(x), F.array(w1)), F.array(w2), padding=1, groups=40).read()
        text = _native.profile_report(5)
    finally:
        _native.set_profiling(False)
        _native.profile_reset()
    assert "conv2d[nchw16c]" in text and "float32(1, 3, 6, 6, 16)" in text


def test_expand_runs_inside_the_depthwise_step_on_wide_rows(level):
    """On planes at least 28 wide, a blocked 1x1 whose output only a 3x3 depthwise reads is computed
    inside it (rows expanded into a ring, never stored): one step, named conv2d[nchw16c 1x1>dw];
    stride 1 and 2, bands split over threads, against torch."""
    rng = np.random.default_rng(7)
    x, w1, b1 = _rand(rng, 1, 24, 31, 30), _rand(rng, 40, 24, 1, 1, scale=0.3), _rand(rng, 40)
    w2, b2, w3 = _rand(rng, 40, 1, 3, 3, scale=0.3), _rand(rng, 40), _rand(rng, 24, 40, 1, 1, scale=0.3)
    for stride in (1, 2):
        def build(x, w1, b1, w2, b2, w3, stride=stride):
            y = _relu6(F.conv2d(x, w1, b1))
            return F.conv2d(_relu6(F.conv2d(y, w2, b2, stride=stride, padding=1, groups=40)), w3)

        def ref(x, w1, b1, w2, b2, w3, stride=stride):
            y = torch.clamp(tnn.conv2d(x, w1, b1), 0, 6)
            return tnn.conv2d(torch.clamp(tnn.conv2d(y, w2, b2, stride=stride, padding=1, groups=40), 0, 6), w3)
        _check(build, ref, [x, w1, b1, w2, b2, w3], blocked=3)
        F.clear_plan_cache()
        _native.set_profiling(True)
        _native.profile_reset()
        try:
            _lazy(build, [x, w1, b1, w2, b2, w3])
            text = _native.profile_report(5)
        finally:
            _native.set_profiling(False)
            _native.profile_reset()
        assert "conv2d[nchw16c 1x1>dw]" in text
