"""Lazy plans run chains of elementwise ops as one blocked pass (DESIGN §5).

Large random elementwise DAGs (above the fusion threshold) must give the
numpy result with fusion on, and the same bits with fusion off.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
from mnn_expr import _native

N = 40_000  # above the native fusion threshold; not a multiple of the block size

UNARY = [("exp", np.exp), ("tanh", np.tanh), ("abs", np.abs), ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
         ("negative", np.negative), ("square", np.square)]
BINARY = [("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply), ("maximum", np.maximum),
          ("minimum", np.minimum)]


@st.composite
def dags(draw):
    """A list of ops; each reads earlier values (inputs, scalars or previous results)."""
    n_ops = draw(st.integers(2, 8))
    ops = []
    for k in range(n_ops):
        avail = 3 + k
        if draw(st.booleans()):
            ops.append(("u", draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, avail - 1))))
        else:
            b = draw(st.integers(0, len(BINARY) - 1))
            lhs = draw(st.integers(0, avail - 1))
            rhs = draw(st.one_of(st.integers(0, avail - 1), st.just(-1)))  # -1: a Python scalar
            ops.append(("b", b, lhs, rhs))
    outs = draw(st.lists(st.integers(3, 3 + n_ops - 1), min_size=1, max_size=3, unique=True))
    return ops, outs


def run_dag(ops, outs, vals, lib):
    env = list(vals)
    for op in ops:
        if op[0] == "u":
            name, ref = UNARY[op[1]]
            x = env[op[2]]
            env.append(ref(x) if lib is np else getattr(F, name)(x))
        else:
            name, ref = BINARY[op[1]]
            x = env[op[2]]
            y = 0.5 if op[3] == -1 else env[op[3]]
            if lib is np:
                env.append(ref(x, np.float32(y) if op[3] == -1 else y))
            else:
                env.append(getattr(F, name)(x, y))
            # keep values bounded so exp/square chains stay finite
            env[-1] = np.tanh(env[-1]) if lib is np else F.tanh(env[-1])
    return [env[i] for i in outs]


@settings(max_examples=25)
@given(dag=dags(), seed=st.integers(0, 2**31))
def test_fused_lazy_matches_numpy_and_unfused(dag, seed):
    ops, outs = dag
    rng = np.random.default_rng(seed)
    vals = [rng.uniform(-1, 1, N).astype(np.float32) for _ in range(2)] + [np.float32(rng.uniform(-1, 1, 1))]
    ref = run_dag(ops, outs, vals, np)
    results = {}
    for fused in (True, False):
        _native.set_fusion(fused)
        try:
            with F.lazy_eval(True):
                ours = run_dag(ops, outs, [F.array(v) for v in vals], F)
                F.evaluate(*ours)
                results[fused] = [o.read() for o in ours]
        finally:
            _native.set_fusion(True)
    for r, f, u in zip(ref, results[True], results[False]):
        np.testing.assert_allclose(f, r, rtol=2e-5, atol=2e-6)
        np.testing.assert_array_equal(f, u)


def test_intermediate_that_is_also_read_is_materialised():
    a = F.array(np.linspace(-1, 1, N, dtype=np.float32))
    with F.lazy_eval(True):
        t = a * 2.0
        u = F.exp(t) + t
        F.evaluate(t, u)
    np.testing.assert_allclose(t.read(), np.linspace(-1, 1, N, dtype=np.float32) * 2, rtol=1e-6)
    np.testing.assert_allclose(u.read(), np.exp(t.read()) + t.read(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_fused_chain_with_casts_and_where(dtype):
    x = np.arange(N).astype(dtype) % 97
    with F.lazy_eval(True):
        v = F.array(x)
        y = F.where(v > 40, v * 2, v - 1).astype("float32") / 3.0
        got = y.read()
    ref = (np.where(x > 40, x * 2, x - 1).astype(np.float32) / np.float32(3.0))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
