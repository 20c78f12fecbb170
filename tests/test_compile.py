"""F.compile: traced once per signature, run in one native call; results equal eager and numpy,
including a whole training step (model + optimizer state) against the eager step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim

# ---- pure functions ----------------------------------------------------------------------------------

_UNARY = [("exp", np.exp), ("tanh", np.tanh), ("abs", np.abs), ("negative", np.negative), ("sin", np.sin)]
_BINARY = [("add", np.add), ("multiply", np.multiply), ("subtract", np.subtract), ("maximum", np.maximum)]


@st.composite
def programs(draw):
    """A random expression DAG over 3 inputs: a list of (op, operand indices) steps."""
    steps = []
    for k in range(draw(st.integers(1, 8))):
        avail = 3 + k
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(_UNARY) - 1)), draw(st.integers(0, avail - 1))))
        else:
            steps.append(("b", draw(st.integers(0, len(_BINARY) - 1)), draw(st.integers(0, avail - 1)),
                          draw(st.integers(0, avail - 1))))
    return steps


def run_program(steps, xs, lib):
    vals = list(xs)
    for s in steps:
        if s[0] == "u":
            name, f = _UNARY[s[1]]
            vals.append(getattr(F, name)(vals[s[2]]) if lib == "F" else f(vals[s[2]]))
        else:
            name, f = _BINARY[s[1]]
            vals.append(getattr(F, name)(vals[s[2]], vals[s[3]]) if lib == "F" else f(vals[s[2]], vals[s[3]]))
    return vals[3:]


@settings(max_examples=25, deadline=None)
@given(steps=programs(), shape=st.sampled_from([(), (3,), (2, 5), (4, 1)]), seed=st.integers(0, 2**31 - 1))
def test_random_dags_compiled_equal_eager_and_numpy(steps, shape, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(3)]
    f = F.compile(lambda a, b, c: run_program(steps, [a, b, c], "F"))
    for _ in range(2):  # the second call runs the cached program
        got = f(*[F.array(a) for a in arrays])
        eager = run_program(steps, [F.array(a) for a in arrays], "F")
        ref = run_program(steps, arrays, "np")
        for g, e, r in zip(got, eager, ref):
            np.testing.assert_allclose(g.read(), e.read(), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(g.read(), r, rtol=1e-5, atol=1e-6)
        arrays = [a * 0.5 for a in arrays]
    assert f.traces == 1


def test_nested_arguments_and_results():
    @F.compile
    def f(pair, d, scale):
        a, b = pair
        return {"s": (a + b) * scale, "p": [a * d["w"], None]}

    out = f((F.array([1.0, 2.0]), F.array([3.0, 4.0])), {"w": F.array([2.0, 2.0])}, 3.0)
    assert out["s"].tolist() == [12.0, 18.0]
    assert out["p"][0].tolist() == [2.0, 4.0] and out["p"][1] is None


def test_retraces_per_signature_only():
    f = F.compile(lambda x, k: x * k)
    f(F.ones(3), 2.0)
    f(F.zeros(3), 2.0)
    assert f.traces == 1
    assert f(F.ones(4), 2.0).tolist() == [2.0] * 4  # new shape
    assert f(F.ones(4), 5.0).tolist() == [5.0] * 4  # new constant argument
    assert f(F.ones(4, dtype="float64"), 5.0).dtype == F.float64  # new dtype
    assert f.traces == 4


def test_reading_values_while_tracing_points_to_ops():
    def branchy(x):
        return x * 2 if x.sum() > 0 else x

    with pytest.raises(ValueError, match="compile: the function reads the value of a traced Var.*F.where"):
        F.compile(branchy)(F.ones(2))
    with pytest.raises(ValueError, match="compile"):
        F.compile(lambda x: x.item())(F.ones(1))
    assert not F.is_tracing()  # the failed trace cleaned up


def test_random_draws_are_refused():
    with pytest.raises(NotImplementedError, match="random"):
        F.compile(lambda x: x + F.random.uniform(size=x.shape))(F.ones(2))


def test_bad_arguments():
    with pytest.raises(TypeError, match="compile: expected a function"):
        F.compile(3)
    with pytest.raises(TypeError, match="compile: arguments must be"):
        F.compile(lambda x: x)(np.ones(2))
    with pytest.raises(TypeError, match="compile: state must be"):
        F.compile(lambda x: x, state=[object()])(F.ones(1))


# ---- modules and training steps ------------------------------------------------------------------------

def _cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 16),
                         nn.ReLU(), nn.Linear(16, 5))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return F.array(rng.standard_normal((8, 1, 8, 8)).astype(np.float32)), F.array(rng.integers(0, 5, 8))


def test_compiled_forward_follows_the_module_weights():
    model = _cnn()
    fwd = F.compile(model, state=model)
    x, _ = _batch()
    np.testing.assert_allclose(fwd(x).read(), model(x).read(), rtol=1e-6, atol=1e-6)
    model.load_state_dict({k: np.asarray(v) * 0.5 for k, v in model.state_dict().items()})
    np.testing.assert_allclose(fwd(x).read(), model(x).read(), rtol=1e-6, atol=1e-6)
    assert fwd.traces == 1
    model.eval()  # mode change: a new trace
    fwd(x)
    assert fwd.traces == 2


def _step(model, opt, x, y):
    loss = nn.loss.cross_entropy(model(x), y)
    grads = F.grad(loss, list(model.parameters()), create_graph=False)
    opt.apply(grads)
    return loss


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: optim.Adam(p, lr=0.01),
    lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5),
], ids=["sgd-nesterov", "adam", "rmsprop"])
def test_compiled_training_step_follows_eager(make_opt):
    eager_model, model = _cnn(), _cnn()
    model.load_state_dict(eager_model.state_dict())
    eager_opt, opt = make_opt(eager_model.parameters()), make_opt(model.parameters())
    step = F.compile(lambda x, y: _step(model, opt, x, y), state=[model, opt])
    sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5) if hasattr(optim, "lr_scheduler") else None
    eager_sched = optim.lr_scheduler.StepLR(eager_opt, step_size=3, gamma=0.5) if sched else None
    for i in range(6):
        x, y = _batch(i % 2)
        want = _step(eager_model, eager_opt, x, y).item()
        got = step(x, y).item()
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), f"step {i}"
        if sched:
            sched.step()
            eager_sched.step()
    for p, q in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(p.read(), q.read(), rtol=1e-4, atol=1e-6)
        assert p.requires_grad
    # every parameter and optimizer state is a plain value again (no graph kept between steps)
    assert all(not p._has_history for p in model.parameters())


@pytest.mark.parametrize("make_opt", [lambda p: optim.SGD(p, lr=0.05, momentum=0.9), lambda p: optim.Adam(p, lr=0.01)],
                         ids=["sgd", "adam"])
def test_compiled_step_reuses_its_trace(make_opt):
    model = _cnn()
    opt = make_opt(model.parameters())
    step = F.compile(lambda x, y: _step(model, opt, x, y), state=[model, opt])
    x, y = _batch()
    losses = [step(x, y).item() for _ in range(5)]
    assert step.traces == 2  # the first step creates the optimizer state: one more trace, then none
    assert losses[-1] < losses[0]
    for s in opt._states:  # Adam's step count is an input of the program, stored back as an int
        assert s.get("step", 5) == 5 and isinstance(s.get("step", 5), int)


def test_constant_folding_at_trace_time():
    """Sub-expressions that read no argument are computed once when traced (and can be switched off)."""
    table = np.linspace(0.0, 1.0, 5)

    def f(x):
        c = F.exp(F.array(table) * 2.0).sum() + F.sin(F.array(table))  # reads no argument: folded
        return x * c

    x = np.array([1.0, -2.0, 3.0, 0.5, 2.0])
    want = x * (np.exp(table * 2.0).sum() + np.sin(table))
    on, off = F.compile(f), F.compile(f, fold_constants=False)
    np.testing.assert_allclose(on(F.array(x)).read(), want, rtol=1e-12)
    np.testing.assert_allclose(off(F.array(x)).read(), want, rtol=1e-12)
    assert on.folded == 1 and off.folded == 0
    on(F.array(x))
    plan_on = F.last_plan_memory()["planned_values"]
    off(F.array(x))
    plan_off = F.last_plan_memory()["planned_values"]
    assert plan_on < plan_off  # the folded intermediates are not recomputed per call
