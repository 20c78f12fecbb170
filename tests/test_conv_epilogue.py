"""The conv_epilogue pass: a convolution and the elementwise chain after it run as one step.

Fused and unfused plans must give the same bits (the pass is switched off with
``F.passes_disabled("conv_epilogue")``), and both must match torch; chains that may not
fuse (a value read twice, a result in the middle, an operand of another broadcast shape,
half precision) keep their steps.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import mnn_expr as F

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def fresh_plans():
    F.clear_plan_cache()
    yield
    F.clear_plan_cache()


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def run_both(build, *leaves):
    """build(*vars) -> list of Vars, evaluated lazily with the pass on (fused steps counted) and off."""
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
    assert out[False][1] == 0
    return out[True][0], out[True][1]


def _t(a):
    return torch.from_numpy(np.array(a)).double()


def _conv_ref(x, w, b=None, **kw):
    return torch.nn.functional.conv2d(_t(x), _t(w), None if b is None else _t(b), **kw)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 32, 9, 10)).astype(np.float32)
W = RNG.standard_normal((24, 32, 3, 3)).astype(np.float32)  # 288 taps: the implicit GEMM path
B = RNG.standard_normal(24).astype(np.float32)
RES = RNG.standard_normal((2, 24, 9, 10)).astype(np.float32)
CH = RNG.standard_normal((1, 24, 1, 1)).astype(np.float32)


def _close(got, ref, tol=2e-4):
    np.testing.assert_allclose(got, ref.numpy() if hasattr(ref, "numpy") else ref, rtol=tol, atol=tol)


def test_conv_relu():
    (y,), n = run_both(lambda x, w, b: [F.relu(F.conv2d(x, w, b, padding=1))], X, W, B)
    assert n == 1
    _close(y, torch.relu(_conv_ref(X, W, B, padding=1)))


def test_relu6_as_maximum_minimum_scalars():
    def build(x, w, b):
        return [F.minimum(F.maximum(F.conv2d(x, w, b, padding=1), 0.0), 6.0)]

    (y,), n = run_both(build, X, W * 4, B)
    assert n == 2
    _close(y, torch.clamp(_conv_ref(X, W * 4, B, padding=1), 0, 6), 1e-3)


def test_residual_add_relu_both_operand_orders():
    def build(x, w, b, r):
        c = F.conv2d(x, w, b, padding=1)
        return [F.relu(c + r), F.relu(r + F.conv2d(x, w * 2.0, b, padding=1))]

    (y1, y2), n = run_both(build, X, W, B, RES)
    assert n == 4
    _close(y1, torch.relu(_conv_ref(X, W, B, padding=1) + _t(RES)))
    _close(y2, torch.relu(_t(RES) + _conv_ref(X, 2 * W, B, padding=1)), 4e-4)


def test_subtract_multiply_per_channel_and_swapped():
    def build(x, w, r, ch):  # (three weights: equal convolutions would be merged by CSE)
        c = F.conv2d(x, w, padding=1)
        a = 1.5 - c * F.reshape(ch, [24, 1, 1])  # a rank-3 per-channel operand, a scalar first
        d = r - F.conv2d(x, -w, padding=1)  # the residual first
        e = F.conv2d(x, w * 0.5, padding=1) - ch  # a per-channel [1, O, 1, 1] operand second
        return [a, d, e]

    (a, d, e), n = run_both(build, X, W, RES, CH)
    assert n == 4
    c = _conv_ref(X, W, padding=1)
    _close(a, 1.5 - c * _t(CH), 5e-4)
    _close(d, _t(RES) + c)
    _close(e, 0.5 * c - _t(CH))


def test_residual_on_few_positions():
    """7x7 outputs: the transposed product (positions as GEMM rows) with a residual epilogue."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 96, 7, 7)).astype(np.float32)
    w = rng.standard_normal((64, 96, 3, 3)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    r = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    (y,), n = run_both(lambda x, w, b, r: [F.relu(F.conv2d(x, w, b, padding=1) + r)], x, w, b, r)
    assert n == 2
    _close(y, torch.relu(_conv_ref(x, w, b, padding=1) + _t(r)), 5e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_positions_channel_and_scalar_operands(dtype):
    """7x7 outputs, 1x1 and 3x3: the epilogue runs on the transposed tile (channels as vectors)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 160, 7, 7)).astype(dtype)
    w1 = rng.standard_normal((200, 160, 1, 1)).astype(dtype)
    w3 = rng.standard_normal((40, 160, 3, 3)).astype(dtype)
    b = rng.standard_normal(200).astype(dtype)
    ch = rng.standard_normal((1, 200, 1, 1)).astype(dtype)

    def build(x, w1, w3, b, ch):
        y1 = F.minimum(F.maximum(F.conv2d(x, w1, b), 0.0), 6.0)
        y2 = 2.0 - F.conv2d(x, w1 * 0.5) * ch  # per-channel multiply, then a scalar first
        y3 = F.relu(F.reshape(ch, [200, 1, 1])[:40] - F.conv2d(x, w3, padding=1))  # per-channel first
        return [y1, y2, y3]

    (y1, y2, y3), n = run_both(build, x, w1, w3, b, ch)
    assert n == 6
    tol = 1e-9 if dtype == np.float64 else 5e-4
    c1 = _conv_ref(x, w1, b)
    _close(y1, torch.clamp(c1, 0, 6), tol)
    _close(y2, 2.0 - _conv_ref(x, 0.5 * w1) * _t(ch), tol)
    _close(y3, torch.relu(_t(ch)[:, :40] - _conv_ref(x, w3, padding=1)), tol)


@pytest.mark.parametrize("kind", ["depthwise", "depthwise_s2", "pointwise", "direct", "stride2", "float64"])
def test_every_conv_path_fuses(kind):
    rng = np.random.default_rng(3)
    dt = np.float64 if kind == "float64" else np.float32
    C = {"depthwise": 16, "depthwise_s2": 16, "pointwise": 32, "direct": 3, "stride2": 32, "float64": 40}[kind]
    x = rng.standard_normal((1, C, 12, 11)).astype(dt)
    groups = C if kind.startswith("depthwise") else 1
    k = 1 if kind == "pointwise" else 3
    stride = 2 if kind in ("depthwise_s2", "stride2") else 1
    w = rng.standard_normal((C, C // groups, k, k)).astype(dt)
    b = rng.standard_normal(C).astype(dt)

    def build(x, w, b):
        y = F.conv2d(x, w, b, stride=stride, padding=k // 2, groups=groups)
        return [F.minimum(F.maximum(y, -1.0), 1.0)]

    (y,), n = run_both(build, x, w, b)
    assert n == 2
    ref = torch.clamp(_conv_ref(x, w, b, stride=stride, padding=k // 2, groups=groups), -1, 1)
    _close(y, ref, 1e-9 if dt == np.float64 else 3e-4)


def test_nan_and_signed_zero_follow_the_elementwise_kernels():
    x = X.copy()
    x[0, 0, 2, 3] = np.nan  # NaN reaches some outputs
    w = W.copy()
    w[5] = 0.0  # channel 5 is exactly +0.0 (no bias) away from the NaN

    def build(x, w):
        return [F.relu(F.conv2d(x, w, padding=1)), F.maximum(F.conv2d(x, w * 2.0, padding=1), -0.0),
                F.minimum(-0.0, F.conv2d(x, w * 3.0, padding=1)),
                # the kernels' fast forms: maximum with +0.0, maximum / minimum with other values
                F.minimum(F.maximum(F.conv2d(x, w * 4.0, padding=1), 0.0), 6.0),
                F.maximum(1.5, F.minimum(F.conv2d(x, w * 5.0, padding=1), -2.0))]

    (r, mx, mn, r6, mm), n = run_both(build, x, w)
    assert n == 7 and np.isnan(r6).any() and np.isnan(mm).any()
    assert np.isnan(mx).any() and not np.isnan(r).any()  # relu(NaN) = 0 (our relu), maximum keeps NaN


def test_long_chains_fuse_up_to_the_limit():
    def build(x, w, b):
        y = F.conv2d(x, w, b, padding=1)
        for i in range(10):
            y = y * 1.25 if i % 2 else y + 0.5
        return [y]

    (y,), n = run_both(build, X, W, B)
    assert n == 8  # kMaxEpilogueOps; the rest run as ordinary steps
    ref = _conv_ref(X, W, B, padding=1)
    for i in range(10):
        ref = ref * 1.25 if i % 2 else ref + 0.5
    _close(y, ref, 2e-3)


def test_what_does_not_fuse():
    def read_twice(x, w, b):
        c = F.conv2d(x, w, b, padding=1)
        return [F.relu(c) + c]  # c has two readers

    def result_in_middle(x, w, b):
        c = F.conv2d(x, w, b, padding=1)
        r = F.relu(c)
        return [r, F.minimum(r, 1.0)]  # r is read out: conv -> relu fuses, minimum stays a step

    def other_broadcast(x, w, b):
        c = F.conv2d(x, w, b, padding=1)
        return [c + F.ones([1, 1, 9, 10])]  # broadcast over channels, not per channel

    for build, want in ((read_twice, 0), (result_in_middle, 1), (other_broadcast, 0)):
        outs, n = run_both(build, X, W, B)
        assert n == want, build.__name__
    ref = _conv_ref(X, W, B, padding=1)
    _close(run_both(read_twice, X, W, B)[0][0], torch.relu(ref) + ref)

    xh, wh = X.astype(np.float16), W.astype(np.float16)
    (yh,), n = run_both(lambda x, w: [F.relu(F.conv2d(x, w, padding=1))], xh, wh)
    assert n == 0 and yh.dtype == np.float16


def test_operand_computed_after_the_convolution():
    """ResNet's downsampling block: the shortcut's convolution comes after the main one."""
    x2 = RNG.standard_normal((1, 32, 10, 10)).astype(np.float32)
    w_down = RNG.standard_normal((24, 32, 1, 1)).astype(np.float32)

    def build(x, w, b, wd):
        main = F.conv2d(x, w, b, stride=2, padding=1)
        short = F.conv2d(x, wd, stride=2)
        return [F.relu(main + short)]

    (y,), n = run_both(build, x2, W, B, w_down)
    assert n == 2
    _close(y, torch.relu(_conv_ref(x2, W, B, stride=2, padding=1) + _conv_ref(x2, w_down, stride=2)))


def test_compiled_cnn_block_matches_torch():
    """A compiled function (placeholders, cached plan) with fused blocks, run twice with new input."""
    tw = torch.nn.Conv2d(32, 24, 3, padding=1)

    def block(x):
        h = F.relu(F.conv2d(x, F.array(tw.weight.detach().numpy()), F.array(tw.bias.detach().numpy()), padding=1))
        return F.minimum(F.maximum(h + 0.5, 0.0), 6.0)

    f = F.compile(block)
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((2, 32, 9, 10)).astype(np.float32)
        got = f(F.array(x)).read()
        with torch.no_grad():
            ref = torch.clamp(torch.relu(tw(torch.from_numpy(x))) + 0.5, 0, 6).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
