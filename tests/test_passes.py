"""The lazy executor's graph passes (simplify, CSE, DCE): each fires on a graph made for it and
leaves results equal to numpy; random DAGs give eager's bits with every combination of passes,
fusion and memory planning; plans whose passes relied on values are rebuilt when the values
change; training steps and gradients are the same with the passes on and off (and match torch)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim
from mnn_expr import _native

PASSES = ("simplify", "cse", "dce", "conv_epilogue", "matmul_epilogue", "layout")


@pytest.fixture(autouse=True)
def restore_switches():
    """Every test starts from a cold plan cache and restores the executor's switches."""
    before = (F.passes(), _native.fusion_enabled(), F.memory_planning_enabled())
    F.clear_plan_cache()
    yield
    for name, on in before[0].items():
        F.set_pass(name, on)
    _native.set_fusion(before[1])
    F.set_memory_planning(before[2])


def lazy_read(*vars_):
    """Evaluates ``vars_`` in one plan and returns copies of their values."""
    F.evaluate(*vars_)
    return [v.read().copy() for v in vars_]


def both_ways(build, *names):
    """``build()`` (returning Vars) evaluated lazily with the named passes on (counts kept) and off."""
    with F.lazy_eval(True):
        on = lazy_read(*build())
        counts = F.last_plan_passes()
        with F.passes_disabled(*names):
            F.clear_plan_cache()
            off = lazy_read(*build())
            assert all(F.last_plan_passes()[n] == 0 for n in names)
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)
    return on, counts


# ---- the switches ----------------------------------------------------------------------------------

def test_switches_and_names():
    assert _native.pass_names() == list(PASSES)
    assert F.passes() == {"simplify": True, "cse": True, "dce": True, "conv_epilogue": True, "matmul_epilogue": True,
                          "layout": True}
    F.set_pass("cse", False)
    assert not _native.pass_enabled("cse") and F.passes()["cse"] is False
    with F.passes_disabled("simplify", "dce"):
        assert F.passes() == {"simplify": False, "cse": False, "dce": False, "conv_epilogue": True,
                              "matmul_epilogue": True, "layout": True}
    assert F.passes() == {"simplify": True, "cse": False, "dce": True, "conv_epilogue": True,
                          "matmul_epilogue": True, "layout": True}
    with F.passes_disabled():
        assert not any(F.passes().values())
    with pytest.raises(ValueError,
                       match="unknown pass 'fold'.*simplify, cse, dce, conv_epilogue, matmul_epilogue, layout"):
        F.set_pass("fold", True)
    with pytest.raises(ValueError, match="unknown pass"):
        F.passes_disabled("fold")


def test_switches_are_part_of_the_plan_key():
    x = F.array(np.ones(8, np.float32))
    with F.lazy_eval(True):
        (x * 1.0).read()
        assert F.last_plan_passes()["simplify"] == 1
        with F.passes_disabled("simplify"):
            (x * 1.0).read()  # same structure, other switches: another plan
            assert F.last_plan_passes()["simplify"] == 0
    assert F.plan_cache_stats()["misses"] == 2


# ---- each pass fires ---------------------------------------------------------------------------------

def test_cse_merges_equal_steps():
    a = np.linspace(-2, 2, 30, dtype=np.float32).reshape(5, 6)
    x = F.array(a)

    def build():
        s1 = F.sum(F.exp(x) * 2.0, axis=1)
        s2 = F.sum(F.exp(x) * 2.0, axis=1)  # exp: same inputs; "* 2.0": another constant, so not merged
        return [s1 + s2, F.tanh(x) - F.tanh(x)]

    (got, zero), counts = both_ways(build, "cse")
    assert counts["cse"] == 2  # the second exp and the second tanh
    np.testing.assert_allclose(got, 2 * np.sum(np.exp(a) * 2, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(zero, np.zeros_like(a))


def test_cse_compares_attributes_and_merges_multi_output_steps():
    a = np.random.default_rng(0).standard_normal((6, 6)).astype(np.float32)
    x = F.array(a)

    def build():
        s0, s1, s0b = F.sum(x, axis=0), F.sum(x, axis=1), F.sum(x, axis=0)  # same shapes; s1's axes differ
        v1, i1 = _native.apply("sort", [x], {"axis": -1})
        v2, i2 = _native.apply("sort", [x], {"axis": -1})
        return [s0, s1, s0b, v1, i2]

    (s0, s1, s0b, v1, i2), counts = both_ways(build, "cse")
    assert counts["cse"] == 2 and counts["guards"] >= 1
    np.testing.assert_allclose(s0, a.sum(0), rtol=1e-5)
    np.testing.assert_allclose(s1, a.sum(1), rtol=1e-5)
    np.testing.assert_array_equal(s0b, s0)
    np.testing.assert_array_equal(v1, np.sort(a, axis=-1))
    np.testing.assert_array_equal(i2, np.argsort(a, axis=-1, kind="stable"))


def test_random_draws_never_merge():
    attrs = {"shape": [4, 4], "seed": 7, "offset": 0}
    with F.lazy_eval(True):
        r1 = _native.apply("random_uniform", [], attrs)[0]
        r2 = _native.apply("random_uniform", [], attrs)[0]
        a, b = lazy_read(r1 * 3.0, r2 * 3.0)
    assert F.last_plan_passes()["cse"] == 0
    np.testing.assert_array_equal(a, b)  # counter-based draws: the same numbers, computed twice


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64"])
def test_simplify_arithmetic_identities(dtype):
    a = (np.arange(-6, 6).reshape(3, 4) * (1.5 if dtype.startswith("float") else 1)).astype(dtype)
    x = F.array(a)

    def build():
        one, zero = F.array(np.ones((), dtype)), F.array(np.zeros((), dtype))
        return [x * one, one * x, x - zero, x * F.array(np.ones((1, 1), dtype))]

    outs, counts = both_ways(build, "simplify")
    assert counts["simplify"] == 4
    for o in outs:
        assert o.dtype == a.dtype
        np.testing.assert_array_equal(o, a)


def test_simplify_keeps_signed_zero():
    a = np.array([-0.0, 0.0, 1.5, -2.0], np.float32)
    x = F.array(a)
    with F.lazy_eval(True):
        (plus,) = lazy_read(x + 0.0)  # -0.0 + 0.0 is +0.0: not an identity for floats
        assert F.last_plan_passes()["simplify"] == 0
        # (that plan assumed nothing about the constant, so it would be reused for -0.0, unsimplified)
        F.clear_plan_cache()
        (minus,) = lazy_read(x + F.array(np.float32(-0.0)))  # x + (-0.0) is x, bit for bit
        assert F.last_plan_passes()["simplify"] == 1
    assert np.signbit(plus).tolist() == np.signbit(a + np.float32(0.0)).tolist() == [False, False, False, True]
    np.testing.assert_array_equal(np.signbit(minus), np.signbit(a))
    ints = F.array(np.arange(4, dtype=np.int32))
    with F.lazy_eval(True):
        (r,) = lazy_read(ints + 0)  # integers have one zero
    assert F.last_plan_passes()["simplify"] == 1 and r.tolist() == [0, 1, 2, 3]


def test_simplify_movement_chains_and_dce():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = F.array(a)

    def build():
        r = F.tanh(x).reshape(6, 4).reshape(4, 6).reshape(24)  # one reshape
        same = F.exp(x).reshape(2, 3, 4)  # identity reshape: an alias
        tt = F.transpose(F.transpose(F.sin(x), (2, 0, 1)), (1, 2, 0))  # composed: the identity
        t3 = F.transpose(F.transpose(F.cos(x), (1, 0, 2)), (0, 2, 1))  # composed: one transpose (2, 0, 1)
        c = _native.apply("cast", [F.negative(x)], {"dtype": "float32"})[0]  # cast to its own dtype
        return [r, same, tt, t3, c]

    (r, same, tt, t3, c), counts = both_ways(build, "simplify", "dce")
    # reshape: 2 chain links + 1 identity; transposes: 2 compositions + 1 identity; cast: 1
    assert counts["simplify"] == 7
    assert counts["dce"] == 4  # the two inner reshapes and the two inner transposes
    np.testing.assert_allclose(r, np.tanh(a).reshape(24), rtol=1e-6)
    np.testing.assert_allclose(same, np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(tt, np.sin(a), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(t3, np.cos(a).transpose(1, 0, 2).transpose(0, 2, 1), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(c, -a)


def test_dce_alone_drops_nothing_in_a_collected_graph():
    x = F.array(np.ones(5, np.float32))
    with F.lazy_eval(True):
        with F.passes_disabled("simplify", "cse"):
            lazy_read(F.exp(x) * 2.0)
    assert F.last_plan_passes() == {"simplify": 0, "cse": 0, "dce": 0, "guards": 0, "conv_epilogue": 0,
                                    "matmul_epilogue": 0, "layout": 0}


def test_dce_without_simplify_after_cse():
    a = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    x = F.array(a)

    def build():
        u1 = F.exp(x).reshape(4, 3)
        u2 = F.exp(x).reshape(4, 3)  # merged with u1's exp, then its reshape with u1's
        return [u1 + u2]

    with F.passes_disabled("simplify"):
        (got,), counts = both_ways(build, "cse", "dce")
    assert counts["cse"] == 2 and counts["dce"] == 0
    np.testing.assert_allclose(got, 2 * np.exp(a).reshape(4, 3), rtol=1e-6)


# ---- aliases meet lifetimes, fusion and results ----------------------------------------------------------

@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("n", [64, 40_000])  # below and above the fusion threshold
def test_aliased_results_keep_their_source_alive(fuse, n):
    _native.set_fusion(fuse)
    a = np.linspace(-1, 1, n, dtype=np.float32)
    x = F.array(a)
    with F.lazy_eval(True):
        t = F.tanh(x)  # not a result itself...
        u = t * 1.0  # ...but u, an alias of t, is
        v = F.sin(F.sin(F.exp(t) + 2.0))  # later values would reuse t's region if t died at its last reader
        w = (F.cos(x) * 1.0).reshape(n // 2, 2)  # a result that views an aliased intermediate
        same = x * 1.0  # a result that is a leaf
        got = lazy_read(u, v, w, same)
    assert F.last_plan_passes()["simplify"] >= 3
    np.testing.assert_allclose(got[0], np.tanh(a), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.sin(np.sin(np.exp(np.tanh(a)) + 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[2], np.cos(a).reshape(n // 2, 2), rtol=1e-6)
    np.testing.assert_array_equal(got[3], a)


def test_merged_steps_inside_a_fused_pass():
    rng = np.random.default_rng(3)
    a, b = (rng.uniform(-1, 1, 50_000).astype(np.float32) for _ in range(2))
    x, y = F.array(a), F.array(b)

    def build():
        p, q = x * y, x * y
        return [F.tanh(p + q) * (q - 1.0), q]

    (got, q), counts = both_ways(build, "cse")
    assert counts["cse"] == 1
    np.testing.assert_allclose(got, np.tanh(2 * a * b) * (a * b - 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(q, a * b)


# ---- guards: what a plan assumed about values is checked before reuse -------------------------------------

def test_scalar_placeholder_that_stops_being_one():
    f = F.compile(lambda x, s: F.exp(x) * s)
    a = np.linspace(0, 1, 7, dtype=np.float32)
    fired = []
    for s in (1.0, 2.0, 1.0, 3.0):
        got = f(F.array(a), F.array(np.float32(s))).read()
        np.testing.assert_allclose(got, np.exp(a) * np.float32(s), rtol=1e-6)
        fired.append(F.last_plan_passes()["simplify"])
    assert f.traces == 1
    # x*s aliased under a guard while s is 1; rebuilt once s is 2, and that plan assumes nothing
    assert fired == [1, 0, 0, 0]
    assert F.plan_cache_stats()["misses"] == 2


def test_transpose_permutations_that_change():
    a = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    x = F.array(a)
    perms = [((1, 2, 0), (2, 0, 1)), ((1, 2, 0), (1, 2, 0)), ((1, 0, 2), (1, 0, 2)), ((1, 0, 2), (0, 2, 1)),
             ((1, 2, 0), (2, 0, 1))]
    with F.lazy_eval(True):
        for p1, p2 in perms:  # one structure (cubes): the plan's guards on the permutations decide
            (got,) = lazy_read(F.transpose(F.transpose(F.exp(x), p1), p2))
            np.testing.assert_allclose(got, np.exp(a).transpose(p1).transpose(p2), rtol=1e-6)
    stats = F.plan_cache_stats()
    assert stats["size"] == 1 and stats["misses"] == len(perms)


def test_attributes_that_stop_being_equal():
    a = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    x = F.array(a)
    merged = []
    with F.lazy_eval(True):
        for ax1, ax2 in [(0, 0), (0, 1), (1, 1), (1, 0)]:  # one structure: [4] results either way
            s1, s2 = lazy_read(F.sum(x, axis=ax1), F.sum(x, axis=ax2))
            np.testing.assert_allclose(s1, a.sum(ax1), rtol=1e-5)
            np.testing.assert_allclose(s2, a.sum(ax2), rtol=1e-5)
            merged.append(F.last_plan_passes()["cse"])
    # merged under a guard; rebuilt when the axes differ; that plan assumes nothing, so it stays
    assert merged == [1, 0, 0, 0]
    assert F.plan_cache_stats()["misses"] == 2


# ---- random DAGs: every combination equals eager and numpy ---------------------------------------------

S = 128  # values are [S, S]: 16384 elements, enough for fused passes; square, so transposes keep the shape

_UNARY = [("tanh", np.tanh), ("sin", np.sin), ("negative", np.negative), ("abs", np.abs)]
_BINARY = [("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply), ("maximum", np.maximum)]
_KINDS = ["unary", "binary", "mul1", "rmul1", "div1", "sub0", "addneg0", "add0", "reshape_same", "reshape_chain",
          "transpose", "transpose2", "cast_same", "cast_roundtrip", "center", "center_flat", "max_keep", "sum_keep"]


@st.composite
def dags(draw):
    """Steps over earlier values (2 inputs first); "dup" repeats an earlier step on the same operands,
    as it was or with its attribute selector moved on (so equal structure, other attributes)."""
    steps = []
    for k in range(draw(st.integers(2, 12))):
        avail = 2 + k
        if steps and draw(st.booleans()):  # again, or with the other attribute (axis, op)
            steps.append(("dup", draw(st.integers(0, len(steps) - 1)), draw(st.integers(0, 1))))
            continue
        # reductions to [S] over either axis are told apart by their attributes only: drawn more often
        kind = draw(st.sampled_from(_KINDS + ["center_flat"] * 3))
        steps.append((kind, draw(st.integers(0, avail - 1)), draw(st.integers(0, avail - 1)), draw(st.integers(0, 3))))
    n_vals = 2 + len(steps)
    results = draw(st.lists(st.integers(2, n_vals - 1), max_size=2, unique=True))
    return steps, [-1, *results]  # -1: the sum of every step's value (so each one is seen)


def run_dag(steps, results, inputs, lib):
    """The DAG on Vars (lib F) or numpy arrays (lib np); values stay [S, S] float32 and bounded."""
    vals = list(inputs)
    is_np = lib is np
    for spec in steps:
        shift = 0
        while spec[0] == "dup":
            shift += spec[2]
            spec = steps[spec[1]]
        kind, i, j, f = spec
        f = (f + shift) % 4
        x, y = vals[i], vals[j]
        if kind == "unary":
            name, ref = _UNARY[f]
            v = ref(x) if is_np else getattr(F, name)(x)
        elif kind == "binary":
            name, ref = _BINARY[f]
            v = np.tanh(ref(x, y)) if is_np else F.tanh(getattr(F, name)(x, y))
        elif kind in ("mul1", "rmul1", "div1", "sub0", "addneg0", "add0"):
            c = {"mul1": 1.0, "rmul1": 1.0, "div1": 1.0, "sub0": 0.0, "addneg0": -0.0, "add0": 0.0}[kind]
            c = np.float32(c) if is_np else F.array(np.float32(c))
            if kind == "mul1":
                v = x * c
            elif kind == "rmul1":
                v = c * x
            elif kind == "div1":
                v = x / c
            elif kind == "sub0":
                v = x - c
            else:
                v = x + c
        elif kind == "reshape_same":
            v = x.reshape(S, S)
        elif kind == "reshape_chain":
            v = x.reshape(S // 2, 2 * S).reshape(S * S).reshape(S, S)
        elif kind == "transpose":
            v = x.T
        elif kind == "transpose2":
            v = x.T.T if f % 2 else (np.transpose(x, (1, 0)) if is_np else F.transpose(x, (1, 0))).T
        elif kind == "cast_same":
            v = x.copy() if is_np else _native.apply("cast", [x], {"dtype": "float32"})[0]
        elif kind == "cast_roundtrip":
            v = x.astype(np.float64).astype(np.float32) if is_np else x.astype("float64").astype("float32")
        elif kind == "center":
            v = x - (x.mean(axis=f % 2, keepdims=True) if is_np else F.mean(x, axis=f % 2, keepdims=True))
        elif kind == "center_flat":  # reductions over either axis are both [S]: equal structure, other attributes
            red = ("mean", "max")[f // 2]
            v = x - (getattr(x, red)(axis=f % 2) if is_np else getattr(F, red)(x, axis=f % 2))
        elif kind == "max_keep":
            v = x - (x.max(axis=f % 2, keepdims=True) if is_np else F.max(x, axis=f % 2, keepdims=True))
        else:  # sum_keep, scaled down
            v = (x.sum(axis=f % 2, keepdims=True) if is_np else F.sum(x, axis=f % 2, keepdims=True)) * y * (1 / S)
            v = v.astype(np.float32) if is_np else v
        vals.append(v)
    total = vals[2]
    for v in vals[3:]:
        total = total + v
    return [total if r == -1 else vals[r] for r in results]


@settings(max_examples=60)  # cheap (about 0.05 s an example): more than the CI profile's 15
@given(dag=dags(), seed=st.integers(0, 2**31 - 1))
def test_random_dags_every_combination_equals_eager_and_numpy(dag, seed):
    steps, results = dag
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1, 1, (S, S)).astype(np.float32) for _ in range(2)]
    ref = run_dag(steps, results, inputs, np)
    with F.eager():
        want = [v.read().copy() for v in run_dag(steps, results, [F.array(a) for a in inputs], F)]
    for w, r in zip(want, ref):
        np.testing.assert_allclose(w, r, rtol=2e-5, atol=2e-6)
    for on in itertools.product((True, False), repeat=len(PASSES)):
        for name, flag in zip(PASSES, on):
            F.set_pass(name, flag)
        for fuse, planned in itertools.product((True, False), repeat=2):
            _native.set_fusion(fuse)
            F.set_memory_planning(planned)
            with F.lazy_eval(True):
                got = lazy_read(*run_dag(steps, results, [F.array(a) for a in inputs], F))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w, err_msg=f"passes {dict(zip(PASSES, on))}, fusion {fuse}, "
                                                            f"planning {planned}")


# ---- training steps and gradients --------------------------------------------------------------------------

def _cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 16),
                         nn.ReLU(), nn.Linear(16, 5))


def test_compiled_training_step_same_losses_with_passes_on_and_off():
    rng = np.random.default_rng(0)
    batches = [(F.array(rng.standard_normal((8, 1, 8, 8)).astype(np.float32)), F.array(rng.integers(0, 5, 8)))
               for _ in range(2)]
    init = _cnn().state_dict()
    runs = {}
    for on in (True, False):
        for name in PASSES:
            F.set_pass(name, on)
        model = _cnn()
        model.load_state_dict(init)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y, model=model, opt=opt):
            loss = nn.loss.cross_entropy(model(x), y)
            opt.apply(F.grad(loss, list(model.parameters())))
            return loss

        compiled = F.compile(step, state=[model, opt])
        losses = [compiled(*batches[i % 2]).item() for i in range(5)]
        runs[on] = (losses, F.last_plan_passes(), [p.read().copy() for p in model.parameters()])
    assert runs[True][0] == runs[False][0]
    for p, q in zip(runs[True][2], runs[False][2]):
        np.testing.assert_array_equal(p, q)
    assert runs[True][1]["simplify"] > 0 and runs[False][1] == {"simplify": 0, "cse": 0, "dce": 0, "guards": 0,
                                                                 "conv_epilogue": 0, "matmul_epilogue": 0, "layout": 0}
    assert runs[True][0][-1] < runs[True][0][0]


def test_gradients_same_with_passes_on_and_off_and_match_torch():
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((6, 5)).astype(np.float64)
    w1a, w2a = rng.standard_normal((5, 7)), rng.standard_normal((7, 5))

    def ours():
        x = F.array(xa)
        w1, w2 = F.array(w1a), F.array(w2a)
        w1.requires_grad = w2.requires_grad = True
        h = F.tanh(F.matmul(x, w1))
        h2 = F.tanh(F.matmul(x, w1))  # a duplicate subexpression
        z = F.matmul(h * h2, w2).T.T + x * 1.0
        loss = F.sum(F.softmax(z, axis=-1) * z) + F.mean(F.square(h - h2 + 1.0))
        gs = F.grad(loss, [w1, w2])
        gg = F.grad(F.sum(gs[0] * gs[0]), [w2])  # grad of grad: more duplicates
        return [loss, *gs, *gg]

    results = {}
    for on in (True, False):
        for name in PASSES:
            F.set_pass(name, on)
        with F.lazy_eval(True):
            results[on] = lazy_read(*ours())
            results[on, "counts"] = F.last_plan_passes()
    assert results[True, "counts"]["cse"] > 0 and results[True, "counts"]["simplify"] > 0
    for a, b in zip(results[True], results[False]):
        np.testing.assert_array_equal(a, b)

    x = torch.tensor(xa)
    w1, w2 = torch.tensor(w1a, requires_grad=True), torch.tensor(w2a, requires_grad=True)
    h = torch.tanh(x @ w1)
    z = (h * h) @ w2 + x
    loss = (torch.softmax(z, -1) * z).sum() + torch.square(torch.ones_like(h)).mean()
    g1, g2 = torch.autograd.grad(loss, [w1, w2], create_graph=True)
    (gg,) = torch.autograd.grad((g1 * g1).sum(), [w2])
    for ours_v, ref in zip(results[True], [loss, g1, g2, gg]):
        np.testing.assert_allclose(ours_v, ref.detach().numpy(), rtol=1e-9, atol=1e-10)
