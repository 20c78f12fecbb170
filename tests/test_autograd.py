"""grad() and stop_gradient(): API behaviour, errors, eager == lazy, against torch / closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mnn_expr as F


@pytest.fixture(params=["eager", "lazy"])
def mode(request):
    F.lazy_eval(request.param == "lazy")
    yield request.param
    F.lazy_eval(False)


def leaf(a, dtype=np.float64) -> F.Var:
    x = F.array(np.asarray(a, dtype=dtype))
    x.requires_grad = True
    return x


def test_scalar_output_default_ones(mode) -> None:
    x = leaf([1.0, -2.0, 3.0])
    (g,) = F.grad((x * x * x).sum(), [x])
    np.testing.assert_allclose(g.read(), 3 * np.array([1.0, 4.0, 9.0]))


def test_single_var_arguments(mode) -> None:
    x = leaf(2.0)
    (g,) = F.grad(x * x, x)
    assert g.item() == 4.0


def test_grad_outputs_weight_each_output(mode) -> None:
    a = np.array([[0.5, -1.0], [2.0, 0.25]])
    x = leaf(a)
    y1, y2 = F.sin(x), x * 3.0
    c1, c2 = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[-1.0, 0.0], [0.5, 2.0]])
    (g,) = F.grad([y1, y2], [x], [F.array(c1), c2])
    np.testing.assert_allclose(g.read(), c1 * np.cos(a) + 3 * c2)


def test_non_scalar_output_needs_grad_outputs() -> None:
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match="not a scalar: pass grad_outputs"):
        F.grad(x * 2.0, [x])
    with pytest.raises(ValueError, match="has shape"):
        F.grad(x * 2.0, [x], F.ones((3,)))
    with pytest.raises(ValueError, match="1 grad_outputs given for 2 outputs"):
        F.grad([x * 2.0, x * 3.0], [x], [F.ones((2,))])


def test_unreachable_input_gets_zeros(mode) -> None:
    x, z = leaf([1.0, 2.0]), leaf([[5.0]])
    gx, gz = F.grad((x * x).sum(), [x, z])
    np.testing.assert_allclose(gx.read(), [2.0, 4.0])
    assert gz.shape == (1, 1) and gz.dtype == F.float64
    np.testing.assert_array_equal(gz.read(), [[0.0]])


def test_shared_subexpressions_accumulate(mode) -> None:
    a = np.array([0.3, -0.7, 1.1])
    x = leaf(a)
    h = F.tanh(x)
    y = (h * h + h * x + F.exp(h)).sum()
    (g,) = F.grad(y, [x])
    t = torch.tensor(a, requires_grad=True)
    th = torch.tanh(t)
    (tg,) = torch.autograd.grad((th * th + th * t + torch.exp(th)).sum(), [t])
    np.testing.assert_allclose(g.read(), tg.numpy(), rtol=1e-12)


def test_same_output_twice_and_intermediate_inputs(mode) -> None:
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = F.grad([y, y], [h, x])
    np.testing.assert_allclose(gh.read(), 2 * 2 * np.array([3.0, 6.0]))
    np.testing.assert_allclose(gx.read(), 2 * 2 * 9 * np.array([1.0, 2.0]))


def test_output_is_input(mode) -> None:
    x = leaf([1.0, 2.0])
    (g,) = F.grad(x, [x], F.array([5.0, 6.0], F.float64))
    np.testing.assert_allclose(g.read(), [5.0, 6.0])


def test_eager_equals_lazy() -> None:
    rng = np.random.default_rng(0)
    xa, wa, ba = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    res = {}
    for lazy in (False, True):
        F.lazy_eval(lazy)
        try:
            x, w, b = F.array(xa), leaf(wa), leaf(ba)
            logits = F.matmul(x, w) + b
            loss = -F.log_softmax(logits, axis=1)[:, 0].mean() + (w * w).sum() * 0.1
            gw, gb = F.grad(loss, [w, b])
            (hw,) = F.grad((gw * gw).sum(), [w])  # grad of grad
            res[lazy] = [loss.read().copy(), gw.read().copy(), gb.read().copy(), hw.read().copy()]
        finally:
            F.lazy_eval(False)
    for e, la in zip(res[False], res[True]):
        np.testing.assert_allclose(e, la, rtol=1e-12, atol=1e-14)
    tw, tb = torch.tensor(wa, requires_grad=True), torch.tensor(ba, requires_grad=True)
    tl = -torch.log_softmax(torch.tensor(xa) @ tw + tb, 1)[:, 0].mean() + (tw * tw).sum() * 0.1
    tgw, tgb = torch.autograd.grad(tl, [tw, tb], create_graph=True)
    (thw,) = torch.autograd.grad((tgw * tgw).sum(), [tw])
    np.testing.assert_allclose(res[False][1], tgw.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(res[False][2], tgb.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(res[False][3], thw.numpy(), rtol=1e-10)


def test_stop_gradient(mode) -> None:
    x = leaf([2.0, 3.0])
    s = F.stop_gradient(x)
    assert not s.requires_grad
    np.testing.assert_array_equal(s.read(), [2.0, 3.0])
    (g,) = F.grad((x * s).sum(), [x])
    np.testing.assert_allclose(g.read(), [2.0, 3.0])  # d/dx (x * const) = const
    with pytest.raises(ValueError, match="no output depends"):
        F.grad(s.sum(), [x])


def test_stop_gradient_follows_placeholder_writes() -> None:
    p = F.placeholder((2,), F.float64)
    p.write([1.0, 2.0])
    s = F.stop_gradient(p * 2.0)
    np.testing.assert_array_equal(s.read(), [2.0, 4.0])
    p.write([5.0, 6.0])
    np.testing.assert_array_equal(s.read(), [10.0, 12.0])


def test_fix_as_trainable_parameters(mode) -> None:
    w = F.array(np.array([[1.0, 2.0], [3.0, 4.0]]))
    w.fix_as_trainable()
    assert w.requires_grad and w.op_type == "Trainable"
    x = F.array(np.array([1.0, -1.0]))
    (g,) = F.grad(F.matmul(w, x).sum(), [w])
    np.testing.assert_allclose(g.read(), [[1.0, -1.0], [1.0, -1.0]])


def test_create_graph_false_gives_values_without_history(mode) -> None:
    x = leaf([1.0, 2.0])
    (g,) = F.grad((x * x).sum(), [x], create_graph=False)
    assert not g.requires_grad
    np.testing.assert_allclose(g.read(), [2.0, 4.0])
    with pytest.raises(ValueError, match="no output depends"):
        F.grad(g.sum(), [x])
    (g2,) = F.grad((x * x).sum(), [x])
    assert g2.requires_grad  # create_graph=True: differentiable again


def test_grad_of_grad_third_order(mode) -> None:
    x = leaf(0.7)
    y = F.sin(x) * x
    (g1,) = F.grad(y, [x])
    (g2,) = F.grad(g1, [x])
    (g3,) = F.grad(g2, [x])
    v = 0.7
    assert g1.item() == pytest.approx(np.cos(v) * v + np.sin(v), rel=1e-12)
    assert g2.item() == pytest.approx(-np.sin(v) * v + 2 * np.cos(v), rel=1e-12)
    assert g3.item() == pytest.approx(-np.cos(v) * v - 3 * np.sin(v), rel=1e-12)


def test_composites_softmax_var_conv_front_end(mode) -> None:
    rng = np.random.default_rng(1)
    xa, wa = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    x, w = leaf(xa), leaf(wa)
    y = F.conv2d(x, w, stride=2, padding=1)
    loss = (F.softmax(y, axis=1) * F.var(y, axis=(2, 3), keepdims=True)).sum() + F.relu6(y).mean()
    gx, gw = F.grad(loss, [x, w])
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=2, padding=1)
    tl = (torch.softmax(ty, 1) * ty.var(dim=(2, 3), keepdim=True, unbiased=False)).sum() + \
        torch.nn.functional.relu6(ty).mean()
    tgx, tgw = torch.autograd.grad(tl, [tx, tw])
    np.testing.assert_allclose(gx.read(), tgx.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gw.read(), tgw.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_and_promotion(mode) -> None:
    x = leaf([1.0, 2.0], np.float32)
    y = (x * np.float64(2.0)).sum()  # numpy scalar is strong: promoted to float64 by a cast
    assert y.dtype == F.float64
    (g,) = F.grad(y, [x])
    assert g.dtype == F.float32
    np.testing.assert_allclose(g.read(), [2.0, 2.0])


# ---- errors that say why -------------------------------------------------------------------------------

def test_error_input_without_requires_grad() -> None:
    x = F.array([1.0, 2.0])
    with pytest.raises(ValueError, match="does not require gradients.*requires_grad = True"):
        F.grad((x * x).sum(), [x])


def test_error_outputs_computed_before_marking() -> None:
    x = F.array([1.0, 2.0])
    y = (x * x).sum()
    x.requires_grad = True
    with pytest.raises(ValueError, match="no output depends on a value that requires gradients"):
        F.grad(y, [x])


def test_error_integer_output_and_input() -> None:
    x = leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="output 0.*int64.*not a float"):
        F.grad(F.argmax(x), [x])
    i = F.array([1, 2])
    with pytest.raises(TypeError, match="input 0.*int64.*not a float"):
        F.grad((x * 2.0).sum(), [i])


@pytest.mark.parametrize("build,why", [
    (lambda x: F.cast(F.argmax(x), F.float64) * 1.0, "integer/bool values carry no gradient"),
    (lambda x: F.where(x > 0, 1.0, 2.0).sum(), "the condition of where"),
    (lambda x: F.cast(x > 0, F.float64).sum(), "integer/bool values carry no gradient"),
    (lambda x: F.cast(F.cast(x, F.int32), F.float64).sum(), "integer/bool values carry no gradient"),
    (lambda x: F.gather(F.array([1.0, 2.0, 3.0]), F.cast(x, F.int64)).sum(), "the indices of gather"),
])
def test_error_only_non_differentiable_paths(build, why, mode) -> None:
    x = leaf([0.5, 1.5])
    y = build(x)
    with pytest.raises(ValueError, match="only through non-differentiable steps") as e:
        F.grad(y, [x])
    assert why in str(e.value)


def test_non_differentiable_branch_is_ignored_when_a_differentiable_path_exists(mode) -> None:
    x = leaf([-1.0, 2.0])
    y = (F.where(x > 0, x, x * 0.1) * F.cast(F.argmax(x), F.float64)).sum()
    (g,) = F.grad(y, [x])
    np.testing.assert_allclose(g.read(), [0.1, 1.0])


def test_piecewise_constant_ops_have_zero_gradient(mode) -> None:
    x = leaf([0.3, 1.7])
    (g,) = F.grad((F.floor(x) + F.sign(x) + F.round(x)).sum(), [x])
    np.testing.assert_array_equal(g.read(), [0.0, 0.0])


def test_unsupported_scatter_reduction_is_a_clear_error() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = F.apply("scatter_nd", [x, F.array([[0]]), F.array([2.0], F.float64)], reduction="mul")[0]
    with pytest.raises(ValueError, match="no gradient for scatter_nd with reduction 'mul'"):
        F.grad(y.sum(), [x])


def test_long_chain_no_recursion_limit() -> None:
    x = leaf(1.0)
    y = x
    for _ in range(3000):
        y = y * 1.0001
    (g,) = F.grad(y, [x], create_graph=False)
    assert g.item() == pytest.approx(1.0001 ** 3000, rel=1e-9)


def test_value_and_grad() -> None:
    x = leaf([1.0, 2.0])
    v, (g,) = F.value_and_grad((x * x).sum(), [x])
    assert v.item() == 5.0
    np.testing.assert_allclose(g.read(), [2.0, 4.0])


def _many_ops_loss(x: F.Var, w: F.Var) -> F.Var:
    """A loss touching the rules that build index maps or recompute (pad modes, strided slices,
    raster, pools, sort/topk, scatters, conv) so eager and lazy runs can be compared."""
    y = F.conv2d(x, w, padding=1)
    y = F.apply("pad", [y], pads=[0, 0, 0, 0, 1, 2, 2, 1], mode="reflect", value=0.0)[0]
    y = F.max_pool2d(y, 2) + F.avg_pool2d(y, 2, ceil_mode=True, padding=1)[..., :4, :4]
    y = y[:, :, ::-2, 1::2]
    flat = y.reshape(-1)
    s = F.sort(flat)[::3]
    t = F.apply("topk", [flat], k=4, axis=0, largest=True)[0]
    r = F.raster([flat], [0, 1, 2, 0, 3, -1, 1], [3])
    u = F.apply("scatter_nd", [flat, F.array([[1], [1], [0]]), t[:3]], reduction="none")[0]
    return (s * s).sum() + (t * F.tanh(t)).sum() + (r * r).sum() + (u * u).sum()


def test_eager_equals_lazy_across_many_rules() -> None:
    rng = np.random.default_rng(5)
    xa, wa = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    res = {}
    for lazy in (False, True):
        F.lazy_eval(lazy)
        try:
            x, w = leaf(xa), leaf(wa)
            gx, gw = F.grad(_many_ops_loss(x, w), [x, w])
            res[lazy] = (gx.read().copy(), gw.read().copy())
        finally:
            F.lazy_eval(False)
    for e, la in zip(res[False], res[True]):
        np.testing.assert_allclose(e, la, rtol=1e-12, atol=1e-14)
    # and both against central differences of the loss along a random direction
    v = rng.standard_normal(xa.shape)
    eps = 1e-6
    fp = _many_ops_loss(F.array(xa + eps * v), F.array(wa)).item()
    fm = _many_ops_loss(F.array(xa - eps * v), F.array(wa)).item()
    assert float((res[False][0] * v).sum()) == pytest.approx((fp - fm) / (2 * eps), rel=1e-5)


def test_float32_and_half_gradients() -> None:
    for dt in (np.float32, F.float16, F.bfloat16):
        x = F.array(np.array([0.5, -1.0, 2.0], np.float32)).astype(dt)
        x.requires_grad = True
        (g,) = F.grad((F.tanh(x) * x).sum(), [x])
        assert g.dtype == x.dtype
        a = np.array([0.5, -1.0, 2.0])
        np.testing.assert_allclose(np.asarray(g.read(), np.float64), np.tanh(a) + a * (1 - np.tanh(a) ** 2),
                                   rtol=2e-2 if dt is not np.float32 else 1e-6)


def test_empty_inputs(mode) -> None:
    x = leaf(np.zeros((0, 3)))
    (g,) = F.grad(F.sum(x * 2.0), [x])
    assert g.shape == (0, 3)


def test_placeholder_inputs_recompute_gradients_after_writes() -> None:
    p = F.placeholder((2,), F.float64)
    p.requires_grad = True
    (g,) = F.grad((F.tanh(p) * p).sum(), [p])  # a gradient graph built once, run per write
    for vals in ([1.0, 2.0], [3.0, -4.0]):
        p.write(vals)
        a = np.array(vals)
        np.testing.assert_allclose(g.read(), np.tanh(a) + a * (1 - np.tanh(a) ** 2), rtol=1e-12)


def test_sort_indices_output_carries_no_gradient(mode) -> None:
    x = leaf([3.0, 1.0, 2.0])
    values, indices = F.apply("sort", [x], axis=0, descending=False)
    (g,) = F.grad((values * F.array([1.0, 2.0, 3.0], F.float64)).sum(), [x])
    np.testing.assert_allclose(g.read(), [3.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="not a float"):
        F.grad(indices, [x])
    with pytest.raises(ValueError, match="only through non-differentiable steps"):
        F.grad(F.cast(indices, F.float64).sum(), [x])
