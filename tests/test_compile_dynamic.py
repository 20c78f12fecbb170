"""F.compile with dynamic_axes: one trace serves every size of the dynamic axes.

Results are compared with numpy and with the eager run of the same function (training steps:
the same losses and parameters step by step, at changing batch sizes)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_forward_one_trace_for_every_batch_size() -> None:
    f = F.compile(lambda x: F.softmax(x, axis=1) * F.mean(x, axis=0), dynamic_axes=[0])
    for n in (3, 5, 1, 9, 3):
        a = rand(n, 4)
        e = np.exp(a - a.max(1, keepdims=True))
        np.testing.assert_allclose(f(F.array(a)).numpy(), e / e.sum(1, keepdims=True) * a.mean(0), rtol=1e-5,
                                   atol=1e-6)
    assert f.traces == 1 and f.dynamic_fallback is None


def test_keyword_nested_arguments_and_slices_relative_to_the_end() -> None:
    @F.compile(dynamic_axes={"xs": [1]})
    def diff(xs, scale):
        a, b = xs
        return (a[:, 1:] - a[:, :-1]) * scale + F.reshape(b, (2, -1)).sum()

    for n in (4, 7, 2):
        a, b = rand(3, n), rand(2, n)
        got = diff(xs=[F.array(a), F.array(b)], scale=F.array(np.float32(2.0)))
        np.testing.assert_allclose(got.numpy(), (a[:, 1:] - a[:, :-1]) * 2 + b.sum(), rtol=1e-5, atol=1e-5)
    assert diff.traces == 1


def test_control_flow_bodies_are_generalised_too() -> None:
    f = F.compile(lambda x: F.fori_loop(0, 3, lambda i, c: c * 0.5 + x, x), dynamic_axes=[0])
    for n in (2, 6):
        a = rand(n, 3)
        want = a.copy()
        for _ in range(3):
            want = want * 0.5 + a
        np.testing.assert_allclose(f(F.array(a)).numpy(), want, rtol=1e-6)
    assert f.traces == 1


def _digits_like_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 10))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))


@pytest.mark.parametrize("case", ["conv-crossentropy-adam", "mlp-mse-sgd-momentum"])
def test_training_step_at_changing_batch_sizes_matches_eager(case: str) -> None:
    conv = case.startswith("conv")
    make = _digits_like_model if conv else _mlp
    m_eager, m_comp = make(), make()
    m_comp.load_state_dict(m_eager.state_dict())

    def optimizer(m: nn.Module) -> optim.Optimizer:
        return optim.Adam(m.parameters(), lr=0.01) if conv else optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

    o_eager, o_comp = optimizer(m_eager), optimizer(m_comp)

    def step_of(m: nn.Module, o: optim.Optimizer):
        def step(x, y):
            out = m(x)
            loss = nn.loss.cross_entropy(out, y) if conv else nn.loss.mse_loss(out, y)
            o.step(loss)
            return loss
        return step

    eager, comp = step_of(m_eager, o_eager), F.compile(step_of(m_comp, o_comp), state=[m_comp, o_comp],
                                                         dynamic_axes=[0])
    for b in (8, 8, 5, 8, 3, 7):
        x = rand(b, 1, 8, 8) if conv else rand(b, 5)
        y = RNG.integers(0, 10, b) if conv else rand(b, 2)
        want = eager(F.array(x), F.array(y)).item()
        got = comp(F.array(x), F.array(y)).item()
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), b
    assert comp.dynamic_fallback is None
    assert comp.traces == 2  # the first step (the optimizer creates its state), then all the others
    for (name, p), q in zip(m_eager.named_parameters(), m_comp.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_size_baked_into_the_graph_falls_back_to_one_trace_per_size() -> None:
    f = F.compile(lambda x: x * float(x.shape[0]), dynamic_axes=[0])
    with pytest.warns(UserWarning, match="compiled per size"):
        out = f(F.ones((2, 3)))
    assert "depends on a dynamic axis" in f.dynamic_fallback
    np.testing.assert_array_equal(out.numpy(), np.full((2, 3), 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        np.testing.assert_array_equal(f(F.ones((4, 3))).numpy(), np.full((4, 3), 4.0))


def test_bad_dynamic_axes_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="list of int axes"):
        F.compile(lambda x: x, dynamic_axes={0: 1})
    with pytest.raises(TypeError, match="argument positions or keyword names"):
        F.compile(lambda x: x, dynamic_axes={1.5: [0]})
    f = F.compile(lambda x: x + 1, dynamic_axes={0: [2]})
    with pytest.raises(ValueError, match="dynamic axis 2 is out of range"):
        f(F.ones((2, 3)))
