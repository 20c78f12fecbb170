"""The backend interface, proven by the null test device: planned graphs run their supported steps
through it (launches counted), copies appear exactly where values cross between it and the CPU
(bytes counted), and every result equals the CPU-only run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim


def _run(fn, *arrays):
    with F.lazy_eval(True):
        out = fn(*[F.array(a) for a in arrays])
        return [o.read() for o in (out if isinstance(out, (list, tuple)) else [out])]


def test_copies_only_where_values_cross():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)

    def f(v):
        return F.sort(F.exp(v)) + 1.0  # exp (device) -> sort (CPU: unsupported) -> add (device)

    with F.use_backend("null"):
        (got,) = _run(f, x)
        stats = F.backend_stats()
    np.testing.assert_array_equal(got, _run(f, x)[0])
    n = x.nbytes
    assert stats["launches"] == 2
    assert stats["bytes_uploaded"] == n + n + 4  # x, the sorted values, the scalar 1.0
    assert stats["bytes_downloaded"] == n + n  # exp's result for sort, and the result


def test_a_value_crosses_once_per_direction():
    x = np.ones((64, 64), np.float32)

    def f(v):
        e = F.exp(v)  # on the device, read by two CPU steps and two device steps
        return F.sort(e, axis=0) + F.sort(e, axis=1) + e * e

    with F.use_backend("null", ["exp", "add", "multiply"]):
        (got,) = _run(f, x)
        stats = F.backend_stats()
    np.testing.assert_allclose(got, 2 * np.e + np.e ** 2, rtol=1e-6)  # x is all ones
    assert stats["launches"] == 4  # exp, multiply, add, add
    assert stats["bytes_downloaded"] == x.nbytes * 2  # e once (for both sorts), the result once


def test_nothing_supported_means_no_launches_and_no_copies():
    with F.use_backend("null", ["matmul"]):
        (got,) = _run(lambda v: F.exp(v).sum(), np.ones(10, np.float32))
        assert F.backend_stats() == {"launches": 0, "bytes_uploaded": 0, "bytes_downloaded": 0}
    assert got == pytest.approx(10 * np.e, rel=1e-6)


@st.composite
def dags(draw):
    ops = []
    for k in range(draw(st.integers(1, 10))):
        ops.append((draw(st.sampled_from(["exp", "tanh", "add", "mul", "sort", "sum", "matmul", "reshape"])),
                    draw(st.integers(0, k)), draw(st.integers(0, k))))
    return ops


def _build(ops, x):
    vals = [x]
    for op, a, b in ops:
        u, w = vals[a], vals[b]
        if op == "exp":
            v = F.exp(F.tanh(u))
        elif op == "tanh":
            v = F.tanh(u)
        elif op == "add":
            v = u + w
        elif op == "mul":
            v = u * w * 0.5
        elif op == "sort":
            v = F.sort(u, axis=-1)
        elif op == "sum":
            v = u.sum(axis=0, keepdims=True) + w
        elif op == "matmul":
            v = F.tanh(F.matmul(u, w) * 0.1)
        else:
            v = F.reshape(F.reshape(u, [64]), [8, 8])
        vals.append(v)
    return vals[-1], vals[len(vals) // 2]


@settings(max_examples=40, deadline=None)
@given(dags(), st.sampled_from([[], ["add", "exp"], ["matmul", "sort", "tanh"], ["reshape", "multiply"]]))
def test_random_graphs_same_on_the_device_as_on_the_cpu(ops, supported):
    x = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    want = _run(lambda v: _build(ops, v), x)
    with F.use_backend("null", supported):
        got = _run(lambda v: _build(ops, v), x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_compiled_training_step_on_the_device():
    """A whole compiled training step (forward, grad, Adam) gives the same losses with the device."""
    start = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).state_dict()
    x = F.array(np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32))
    y = F.array(np.random.default_rng(3).integers(0, 3, 16))
    losses = {}
    for name in ("cpu", "null"):
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        model.load_state_dict(start)
        opt = optim.Adam(model.parameters(), lr=0.01)

        def step(xb, yb, model=model, opt=opt):
            loss = nn.loss.cross_entropy(model(xb), yb)
            opt.step(loss)
            return loss
        compiled = F.compile(step, state=[model, opt])
        with F.use_backend(name):
            losses[name] = [compiled(x, y).item() for _ in range(4)]
            launches = F.backend_stats()["launches"]
        assert (launches > 0) == (name == "null")
    assert losses["cpu"][-1] < losses["cpu"][0]
    np.testing.assert_array_equal(losses["null"], losses["cpu"])
