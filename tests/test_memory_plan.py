"""The lazy executor's memory planner: planned bytes on known graphs, and random graphs give the
same values planned and unplanned, fused and unfused (an overlap of two live values would not)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
from mnn_expr import _native


@pytest.fixture
def modes():
    """Restores fusion and planning after a test that switches them."""
    fused, planned = _native.fusion_enabled(), F.memory_planning_enabled()
    yield
    _native.set_fusion(fused)
    F.set_memory_planning(planned)


def region(n_float32: int) -> int:
    """Bytes of one planned float32 region: 64-byte aligned, plus 64 bytes of tail padding."""
    return -(-n_float32 * 4 // 64) * 64 + 64


def test_chain_runs_in_one_region(modes):
    _native.set_fusion(False)
    x = F.array(np.linspace(-1, 1, 1000, dtype=np.float32))
    with F.lazy_eval(True):
        y = x
        for _ in range(8):
            y = F.tanh(y) * 0.5
        y.read()
    mem = F.last_plan_memory()
    assert mem["planned_values"] == 15  # 16 steps; the last one's value is the result
    assert mem["unplanned_bytes"] == 15 * region(1000)
    assert mem["arena_bytes"] == region(1000)  # each step writes over the value it last reads (in place)
    assert mem["in_place"] == 14  # all but the first (its input, x, is a leaf)
    assert mem["result_bytes"] == 4000


def test_diamond_keeps_two_live(modes):
    _native.set_fusion(False)
    x = F.array(np.ones(500, np.float32))
    with F.lazy_eval(True):
        a = F.exp(x)
        b = a * 2.0  # a is still needed by c: b gets a region of its own
        c = a * 3.0  # a's last reader: c computes over a's region, in place
        d = b + c
        np.testing.assert_allclose(d.read(), 5 * np.e, rtol=1e-6)
    mem = F.last_plan_memory()
    assert mem["planned_values"] == 3 and mem["arena_bytes"] == 2 * region(500) and mem["in_place"] == 1


def test_switched_off(modes):
    F.set_memory_planning(False)
    with F.lazy_eval(True):
        (F.exp(F.ones(100)) * 2).sum().read()
    assert F.last_plan_memory()["arena_bytes"] == 0


# ---- random graphs: planned == unplanned, fused == unfused ---------------------------------------------

N = 64  # elements of the base values (fusion blocks need more, so also run a large case below)


@st.composite
def graphs(draw):
    """Steps over values of shape [8, 8] (or [64] views): elementwise, reductions that broadcast
    back, reshape views, matmuls, sorts; several of them are results."""
    steps = []
    for k in range(draw(st.integers(2, 14))):
        avail = 2 + k
        kind = draw(st.sampled_from(["unary", "binary", "view", "matmul", "reduce", "sort"]))
        a, b = draw(st.integers(0, avail - 1)), draw(st.integers(0, avail - 1))
        steps.append((kind, a, b, draw(st.integers(0, 3))))
    results = draw(st.lists(st.integers(0, len(steps) + 1), min_size=1, max_size=4, unique=True))
    return steps, results


def run_graph(steps, results, inputs):
    vals = list(inputs)
    unary = [F.tanh, F.sin, F.negative, lambda v: v * 0.5]
    binary = [F.add, F.multiply, F.subtract, F.maximum]
    for kind, a, b, f in steps:
        x, y = vals[a].reshape(8, 8), vals[b].reshape(8, 8)
        if kind == "unary":
            v = unary[f](x)
        elif kind == "binary":
            v = binary[f](x, y)
        elif kind == "view":
            v = x.reshape(64).reshape(8, 8) if f % 2 else x.reshape(2, 32)
        elif kind == "matmul":
            v = F.matmul(x, y) * 0.1
        elif kind == "reduce":
            v = x - F.mean(x, axis=f % 2, keepdims=True)
        else:
            v = F.sort(x, axis=-1)
        vals.append(v)
    return [vals[r] for r in results]


@settings(max_examples=40, deadline=None)
@given(graph=graphs(), seed=st.integers(0, 2**31 - 1))
def test_random_graphs_planned_equal_unplanned(graph, seed):
    steps, results = graph
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1, 1, (8, 8)).astype(np.float32) for _ in range(2)]
    with F.eager():
        want = [v.read().copy() for v in run_graph(steps, results, [F.array(a) for a in inputs])]
    fused, planned = _native.fusion_enabled(), F.memory_planning_enabled()
    try:
        for fuse in (True, False):
            for plan in (True, False):
                _native.set_fusion(fuse)
                F.set_memory_planning(plan)
                with F.lazy_eval(True):
                    outs = run_graph(steps, results, [F.array(a) for a in inputs])
                    F.evaluate(*outs)
                    for o, w in zip(outs, want):
                        np.testing.assert_array_equal(o.read(), w)
    finally:
        _native.set_fusion(fused)
        F.set_memory_planning(planned)


def test_large_fused_graph_planned_equal_unplanned(modes):
    rng = np.random.default_rng(1)
    a, b = (rng.uniform(-1, 1, 100_000).astype(np.float32) for _ in range(2))
    outs = {}
    for plan in (True, False):
        F.set_memory_planning(plan)
        with F.lazy_eval(True):
            x, y = F.array(a), F.array(b)
            t = F.tanh(x) * y + 1  # a fused pass
            s = F.sort(t)  # a planned value between passes
            u = F.exp(s) - t * 2  # another fused pass reading both
            outs[plan] = (u.read().copy(), F.sum(u * s).read().copy())
    np.testing.assert_array_equal(outs[True][0], outs[False][0])
    np.testing.assert_array_equal(outs[True][1], outs[False][1])


def test_compiled_training_step_reports_planned_memory():
    import mnn_nn as nn
    import mnn_optim as optim

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        loss = nn.loss.cross_entropy(model(x), y)
        opt.apply(F.grad(loss, list(model.parameters())))
        return loss

    compiled = F.compile(step, state=[model, opt])
    assert compiled.memory_stats() == {}
    rng = np.random.default_rng(0)
    compiled(F.array(rng.standard_normal((16, 1, 8, 8)).astype(np.float32)), F.array(rng.integers(0, 10, 16)))
    mem = compiled.memory_stats()
    assert 0 < mem["arena_bytes"] < mem["unplanned_bytes"]


def test_elementwise_steps_compute_in_place(modes):
    """An unfused chain of elementwise ops reuses the dying input's region: one region for the chain."""
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    n = x.nbytes
    _native.set_fusion(False)
    with F.lazy_eval(True):
        v = F.array(x)
        y = F.sqrt(F.abs(F.sin(F.exp(v * 0.5) + 1.0)) + 2.0) * 3.0
        got = y.read()
    mem = F.last_plan_memory()
    np.testing.assert_allclose(got, np.sqrt(np.abs(np.sin(np.exp(x * 0.5) + 1.0)) + 2.0) * 3.0, rtol=1e-5)
    assert mem["in_place"] >= 4, mem
    assert mem["arena_bytes"] < 2 * n, mem  # without in-place reuse: two regions ping-pong
