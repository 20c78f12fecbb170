"""The matmul_epilogue pass: a matmul and the elementwise chain after it run as one step.

Fused and unfused plans must give the same bits (the pass is switched off with
``F.passes_disabled("matmul_epilogue")``) and match NumPy (float64 reference) at every CPU
level; the pass must fire on a compiled Linear + ReLU MLP, and a compiled training step with
it must match eager steps.  Chains that may not fuse keep their steps.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim

LEVELS = ["generic", "avx2", "avx512"]


@pytest.fixture(autouse=True)
def fresh_plans():
    F.clear_plan_cache()
    yield
    F.clear_plan_cache()


@pytest.fixture(params=LEVELS)
def level(request, monkeypatch):
    """MNN_CPU_LEVEL for the test (read on every kernel call; above the hardware's it is capped)."""
    monkeypatch.setenv("MNN_CPU_LEVEL", request.param)
    return request.param


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def run_both(build, *leaves):
    """build(*vars) -> list of Vars, evaluated lazily with the pass on (fused steps counted) and off."""
    out = {}
    for on in (True, False):
        F.clear_plan_cache()
        vs = [F.array(v) for v in leaves]
        with F.lazy_eval(True), (contextlib.nullcontext() if on else F.passes_disabled("matmul_epilogue")):
            res = build(*vs)
            F.evaluate(*res)
            out[on] = ([np.array(r.read()) for r in res], F.last_plan_passes()["matmul_epilogue"])
    for a, b in zip(out[True][0], out[False][0]):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    assert out[False][1] == 0
    return out[True][0], out[True][1]


def _close(got, ref, dtype):
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-11
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def _r(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# (M, K, N): tiny (plain loops), one row / one column (GEMV), odd sizes around the register tiles,
# depth split into several blocks, short-and-wide (streamed B), tall (row blocks x column parts).
SHAPES = [(3, 4, 5), (1, 37, 45), (37, 29, 45), (15, 33, 17), (29, 600, 31), (64, 96, 300), (300, 70, 33)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mkn", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_bias_relu_residual(mkn, dtype, level):
    m, k, n = mkn
    rng = np.random.default_rng(m * 1000 + n)
    x, w, b, res = _r(rng, (m, k), dtype), _r(rng, (n, k), dtype), _r(rng, (n,), dtype), _r(rng, (m, n), dtype)

    def build(x, w, b, res):
        y = F.linear(x, w, b)  # matmul(transpose_b) + add(bias)
        return [F.relu(y) + res]

    (got,), fused = run_both(build, x, w, b, res)
    assert fused == 3
    x64, w64, b64, r64 = (v.astype(np.float64) for v in (x, w, b, res))
    _close(got, np.maximum(x64 @ w64.T + b64, 0) + r64, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_op_and_operand_kind(dtype, level):
    rng = np.random.default_rng(3)
    m, k, n = 23, 41, 35
    a, bm = _r(rng, (m, k), dtype), _r(rng, (k, n), dtype)
    col, full = _r(rng, (1, n), dtype), _r(rng, (m, n), dtype)
    a64, b64, c64, f64 = (v.astype(np.float64) for v in (a, bm, col, full))
    p = a64 @ b64
    cases = [
        (lambda y, c, f: F.relu(y), lambda: np.maximum(p, 0), 1),
        (lambda y, c, f: F.minimum(F.maximum(y, 0.0), 6.0), lambda: np.minimum(np.maximum(p, 0), 6), 2),  # relu6
        (lambda y, c, f: F.maximum(y, -0.5) * 2.0, lambda: np.maximum(p, -0.5) * 2, 2),
        (lambda y, c, f: 1.5 - y, lambda: 1.5 - p, 1),  # scalar first: swapped subtract
        (lambda y, c, f: y - c, lambda: p - c64, 1),
        (lambda y, c, f: c * y, lambda: c64 * p, 1),
        (lambda y, c, f: F.maximum(y, c), lambda: np.maximum(p, c64), 1),
        (lambda y, c, f: F.minimum(f, y), lambda: np.minimum(f64, p), 1),
        (lambda y, c, f: f - y, lambda: f64 - p, 1),
        (lambda y, c, f: (y + c) * f, lambda: (p + c64) * f64, 2),
    ]
    for build, ref, want in cases:
        (got,), fused = run_both(lambda a, b, c, f, build=build: [build(F.matmul(a, b), c, f)], a, bm, col, full)
        assert fused == want
        _close(got, ref(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batched_and_transposed(dtype, level):
    rng = np.random.default_rng(4)
    # B shared by the batch (one tall product), broadcast batches, transposed A.
    a1, b1 = _r(rng, (3, 19, 40), dtype), _r(rng, (40, 21), dtype)
    a2, b2 = _r(rng, (2, 1, 17, 30), dtype), _r(rng, (3, 30, 33), dtype)
    a3, b3 = _r(rng, (2, 45, 13), dtype), _r(rng, (2, 45, 50), dtype)
    bias21, bias33, bias50 = _r(rng, (21,), dtype), _r(rng, (1, 33), dtype), _r(rng, (50,), dtype)
    res2 = _r(rng, (2, 3, 17, 33), dtype)

    def build(a1, b1, a2, b2, a3, b3, bias21, bias33, bias50, res2):
        y1 = F.relu(F.matmul(a1, b1) + bias21)
        y2 = F.relu(F.matmul(a2, b2) + bias33) + res2
        y3 = F.maximum(F.matmul(F.transpose(a3, [0, 2, 1]), b3) + bias50, 0.0)
        return [y1, y2, y3]

    (g1, g2, g3), fused = run_both(build, a1, b1, a2, b2, a3, b3, bias21, bias33, bias50, res2)
    assert fused == 2 + 3 + 2
    d = [v.astype(np.float64) for v in (a1, b1, a2, b2, a3, b3, bias21, bias33, bias50, res2)]
    _close(g1, np.maximum(d[0] @ d[1] + d[6], 0), dtype)
    _close(g2, np.maximum(d[2] @ d[3] + d[7], 0) + d[9], dtype)
    _close(g3, np.maximum(d[4].transpose(0, 2, 1) @ d[5] + d[8], 0), dtype)


def test_special_values_same_bits(level):
    """NaN, infinities and signed zeros through relu / maximum / minimum: fused == unfused."""
    a = np.array([[1.0, -1.0, 0.0], [np.nan, 1.0, 2.0], [0.0, 0.0, 0.0], [np.inf, 1.0, 1.0]], np.float32)
    b = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, -0.0]], np.float32)
    c = np.array([-0.0, np.nan], np.float32)
    for build in (lambda a, b, c: [F.relu(F.matmul(a, b))],
                  lambda a, b, c: [F.maximum(F.matmul(a, b), c)],
                  lambda a, b, c: [F.minimum(c, F.matmul(a, b) + c)],
                  lambda a, b, c: [F.maximum(F.matmul(a, b), 0.0)]):
        run_both(build, a, b, c)


def test_chains_that_do_not_fuse():
    rng = np.random.default_rng(5)
    a, b = _r(rng, (9, 8), "float32"), _r(rng, (8, 7), "float32")
    rowv, v8 = _r(rng, (9, 1), "float32"), _r(rng, (8,), "float32")
    # the matmul read twice; a per-row operand; a 1-d operand (no columns); half precision
    (y,), fused = run_both(lambda a, b: [F.relu(F.matmul(a, b)) + F.matmul(a, b) * 0.0 + F.matmul(a, b)], a, b)
    _, fused_row = run_both(lambda a, b, r: [F.matmul(a, b) + r], a, b, rowv)
    _, fused_vec = run_both(lambda a, v: [F.relu(F.matmul(a, v))], a, v8)
    _, fused_half = run_both(lambda a, b: [F.relu(F.matmul(a, b))], a.astype(np.float16), b.astype(np.float16))
    assert (fused_row, fused_vec, fused_half) == (0, 0, 0)
    # a result in the middle of the chain: the chain stops there
    with F.lazy_eval(True):
        y = F.matmul(F.array(a), F.array(b))
        z = F.relu(y)
        F.evaluate(y, z)
        assert F.last_plan_passes()["matmul_epilogue"] == 0
        np.testing.assert_array_equal(z.read(), np.maximum(y.read(), 0))


def _mlp(seed: int = 0) -> nn.Module:
    F.set_random_seed(seed) if hasattr(F, "set_random_seed") else None
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fires_on_compiled_linear_relu_mlp(level):
    rng = np.random.default_rng(6)
    model = _mlp()
    x = _r(rng, (10, 20), "float32")
    f = F.compile(lambda x: model(x), state=[model])
    got = np.array(f(F.array(x)).read())
    # Linear+ReLU twice (add + relu each), the last Linear's bias add
    assert F.last_plan_passes()["matmul_epilogue"] == 5
    ref = x.astype(np.float64)
    for layer in model:
        sd = layer.state_dict()
        if "weight" in sd:
            ref = ref @ np.asarray(sd["weight"], np.float64).T + np.asarray(sd["bias"], np.float64)
        else:
            ref = np.maximum(ref, 0)
    _close(got, ref, "float32")
    with F.passes_disabled("matmul_epilogue"):
        f_off = F.compile(lambda x: model(x), state=[model])
        off = np.array(f_off(F.array(x)).read())
        assert F.last_plan_passes()["matmul_epilogue"] == 0
    np.testing.assert_array_equal(_bits(got), _bits(off))


def test_compiled_training_step_matches_eager():
    rng = np.random.default_rng(7)
    batches = [(F.array(_r(rng, (12, 20), "float32")), F.array(rng.integers(0, 3, 12))) for _ in range(2)]
    init = _mlp().state_dict()
    runs = {}
    for mode in ("eager", "compiled"):
        model = _mlp()
        model.load_state_dict(init)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y, model=model, opt=opt):
            loss = nn.loss.cross_entropy(model(x), y)
            opt.apply(F.grad(loss, list(model.parameters())))
            return loss

        fn = F.compile(step, state=[model, opt]) if mode == "compiled" else step
        losses = []
        for i in range(6):
            losses.append(float(fn(*batches[i % 2]).item()))
            if mode == "compiled" and i == 0:
                assert F.last_plan_passes()["matmul_epilogue"] > 0
        runs[mode] = (losses, [np.array(p.read()) for p in model.parameters()])
    np.testing.assert_allclose(runs["compiled"][0], runs["eager"][0], rtol=1e-5, atol=1e-6)
    for p, q in zip(runs["compiled"][1], runs["eager"][1]):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)
    assert runs["compiled"][0][-1] < runs["compiled"][0][0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_deep_products_several_depth_blocks(dtype, threads, level):
    """K past the GEMM's depth block (1024 float32 / 512 float64 at AVX-512, 256 below): partial
    sums through C, the epilogue on the last block only; every driver path (blocked, streamed B,
    B read in place)."""
    rng = np.random.default_rng(8)
    old = F.get_thread_number()
    F.set_thread_number(threads)
    try:
        for m, k, n in [(200, 2100, 150), (40, 1500, 300), (33, 1100, 20)]:
            x, w, b = _r(rng, (m, k), dtype), _r(rng, (k, n), dtype), _r(rng, (n,), dtype)
            (got,), fused = run_both(lambda x, w, b: [F.relu(F.matmul(x, w) + b)], x, w, b)
            assert fused == 2
            ref = x.astype(np.float64) @ w.astype(np.float64)
            _close(np.array(F.matmul(x, w).read()), ref, dtype)
            _close(got, np.maximum(ref + b, 0), dtype)
    finally:
        F.set_thread_number(old)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_b_packed_while_used(threads, level):
    """Blocked products of a stored B (AVX-512: each B panel packed by the first task that reaches
    it, while its first row panel runs, others waiting for it): whole and partial panels, several
    depth blocks, the epilogue in registers (bias, relu) and after the store (times a full operand)."""
    rng = np.random.default_rng(10)
    old = F.get_thread_number()
    F.set_thread_number(threads)
    try:
        for m, k, n in [(300, 1100, 150), (257, 300, 200), (1000, 200, 200), (20, 2100, 70)]:
            x, w, b, f = (_r(rng, s, "float32") for s in ((m, k), (k, n), (n,), (m, n)))
            (g1,), fused1 = run_both(lambda x, w, b: [F.relu(F.matmul(x, w) + b)], x, w, b)
            (g2,), fused2 = run_both(lambda x, w, f: [F.matmul(x, w) * f], x, w, f)
            assert (fused1, fused2) == (2, 1)
            ref = x.astype(np.float64) @ w.astype(np.float64)
            _close(np.array(F.matmul(x, w).read()), ref, "float32")
            _close(g1, np.maximum(ref + b, 0), "float32")
            _close(g2, ref * f, "float32")
    finally:
        F.set_thread_number(old)


def test_not_fused_for_a_device_backend():
    """Fused epilogues are CPU kernels: with a device backend the matmul and its chain stay separate steps."""
    rng = np.random.default_rng(9)
    a, b, c = _r(rng, (9, 8), "float32"), _r(rng, (8, 7), "float32"), _r(rng, (7,), "float32")
    with F.use_backend("null"), F.lazy_eval(True):
        y = F.relu(F.matmul(F.array(a), F.array(b)) * 0.5 + F.array(c))
        F.evaluate(y)
        assert F.last_plan_passes()["matmul_epilogue"] == 0
        got = np.array(y.read())
    _close(got, np.maximum(a.astype(np.float64) @ b * 0.5 + c, 0), "float32")
