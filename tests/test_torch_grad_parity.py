"""Gradient parity with torch autograd: layers, losses and optimiser trajectories.

Same weights (torch state_dict -> our load_state_dict) and same inputs on both sides; the
gradients of ``sum(out * cotangent)`` w.r.t. the input(s) and every parameter from
``mnn_expr.grad`` are compared with torch's ``backward()``; float64 to 1e-8 relative,
float32 to 1e-4 (relative to the largest gradient entry).  Every case runs eagerly; a
subset (float32) also lazily.  Training: 20 steps of SGD-momentum / Adam / AdamW on fixed
data with gradients from our autograd follow torch's trajectory (losses and parameters).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim
from mnn_nn import loss as L

torch.set_num_threads(1)
TORCH_DT = {"float32": torch.float32, "float64": torch.float64}
RTOL = {"float32": 1e-4, "float64": 1e-8}


def rand(rng, *shape, dtype="float64"):
    return rng.standard_normal(shape).astype(dtype)


def close(got, want, dtype, what):
    """Entrywise ``|got - want| <= rtol * (|want| + max|want|)`` (relative to the gradient's scale)."""
    got = np.asarray(got.read() if isinstance(got, F.Var) else got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs torch {want.shape}"
    scale = float(np.abs(want).max()) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * max(scale, 1e-30),
                               err_msg=what)


def _leaf(a):
    v = F.array(a)
    v.requires_grad = True
    return v


def _make(cls, args, kw, dtype):
    """Builds our layer (with ``dtype`` where the constructor takes one) and torch's twin."""
    ours_cls, theirs_cls = getattr(nn, cls), getattr(torch.nn, cls)
    okw = dict(kw)
    if "dtype" in inspect.signature(ours_cls.__init__).parameters:
        okw["dtype"] = dtype
    return ours_cls(*args, **okw), theirs_cls(*args, **kw).to(TORCH_DT[dtype])


def _flat_outputs(out):
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _flat_outputs(item)]
    return [] if out is None else [out]


def check_layer(ours, theirs, inputs, dtype, lazy=False, diff_inputs=None, call_kw=None, seed=0,
                randomize=True):
    """Compares d(sum_k out_k * cot_k) / d(inputs, parameters) with torch's."""
    rng = np.random.default_rng(seed)
    if randomize:  # non-trivial affine/bias values (torch initialises some to 1/0)
        with torch.no_grad():
            for name, p in theirs.named_parameters():
                if p.dim() == 1 and ("norm" in name or name in ("weight", "bias") or "bias" in name):
                    p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p.shape) if "weight" in name
                                             else rng.uniform(-0.5, 0.5, p.shape)).to(p.dtype))
    sd = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(sd)
    call_kw = call_kw or {}
    if diff_inputs is None:
        diff_inputs = [np.issubdtype(np.asarray(a).dtype, np.floating) for a in inputs]
    names = [n for n, _ in ours.named_parameters()]
    tparams = dict(theirs.named_parameters())
    assert sorted(names) == sorted(tparams), (names, list(tparams))
    with F.lazy_eval(lazy):
        xs = [_leaf(a) if d else F.array(a) for a, d in zip(inputs, diff_inputs)]
        outs = _flat_outputs(ours(*xs, **{k: F.array(v) for k, v in call_kw.items()}))
        cots = [rand(rng, *o.shape, dtype=dtype) for o in outs]
        loss = sum((o * F.array(c)).sum() for o, c in zip(outs, cots))
        targets = [x for x, d in zip(xs, diff_inputs) if d] + [p for _, p in ours.named_parameters()]
        grads = F.grad(loss, targets)
        grads = [g.read() for g in grads]
    txs = [torch.from_numpy(np.array(a)).requires_grad_(bool(d)) for a, d in zip(inputs, diff_inputs)]
    touts = _flat_outputs(theirs(*txs, **{k: torch.from_numpy(v) for k, v in call_kw.items()}))
    assert len(touts) == len(outs)
    for o, t in zip(outs, touts):
        close(o, t, dtype, "forward")
    tloss = sum((t * torch.from_numpy(c)).sum() for t, c in zip(touts, cots))
    tloss.backward()
    want = [t.grad for t, d in zip(txs, diff_inputs) if d] + [tparams[n].grad for n in names]
    labels = [f"input {i}" for i, d in enumerate(diff_inputs) if d] + names
    for g, w, lab in zip(grads, want, labels):
        close(g, torch.zeros_like(tparams[lab]) if w is None else w, dtype, f"d/d {lab}")


# ---------------------------------------------------------------------------------------------
# layers: (id, class, args, kwargs, input shapes, lazy-subset)
LAYERS = [
    ("linear", "Linear", (5, 3), {}, [(4, 5)], True),
    ("linear-nobias-3d", "Linear", (5, 3), dict(bias=False), [(2, 3, 5)], False),
    ("conv1d", "Conv1d", (4, 6, 3), {}, [(2, 4, 11)], True),
    ("conv1d-stride-dil", "Conv1d", (4, 6, 3), dict(stride=2, padding=2, dilation=2), [(2, 4, 11)], False),
    ("conv1d-groups-same", "Conv1d", (4, 6, 3), dict(groups=2, padding="same"), [(2, 4, 9)], False),
    ("conv1d-reflect", "Conv1d", (4, 6, 3), dict(padding=2, padding_mode="reflect"), [(2, 4, 9)], False),
    ("conv1d-circular", "Conv1d", (4, 6, 3), dict(padding=1, padding_mode="circular"), [(2, 4, 9)], False),
    ("conv1d-replicate-nobias", "Conv1d", (4, 6, 3), dict(padding=2, padding_mode="replicate", bias=False),
     [(2, 4, 9)], False),
    ("conv1d-unbatched", "Conv1d", (4, 6, 3), {}, [(4, 9)], False),
    ("conv2d", "Conv2d", (4, 6, 3), {}, [(2, 4, 7, 6)], True),
    ("conv2d-stride-pad", "Conv2d", (4, 6, 3), dict(stride=2, padding=1), [(2, 4, 7, 8)], False),
    ("conv2d-dilation", "Conv2d", (4, 6, 3), dict(padding=(1, 2), dilation=2), [(2, 4, 8, 7)], False),
    ("conv2d-groups", "Conv2d", (4, 6, 3), dict(groups=2, padding="same"), [(2, 4, 6, 6)], True),
    ("conv2d-depthwise", "Conv2d", (3, 6, (3, 2)), dict(groups=3, padding=1), [(2, 3, 6, 5)], False),
    ("conv2d-reflect", "Conv2d", (4, 6, 3), dict(padding=2, padding_mode="reflect", bias=False),
     [(2, 4, 6, 7)], False),
    ("conv2d-replicate", "Conv2d", (4, 6, 3), dict(padding=1, padding_mode="replicate", stride=2),
     [(2, 4, 7, 7)], False),
    ("conv2d-circular", "Conv2d", (4, 6, 3), dict(padding=(1, 2), padding_mode="circular"), [(2, 4, 6, 7)], True),
    ("conv2d-unbatched", "Conv2d", (4, 6, 3), dict(padding=1), [(4, 6, 5)], False),
    ("convT2d", "ConvTranspose2d", (4, 6, 3), {}, [(2, 4, 5, 6)], True),
    ("convT2d-stride-outpad", "ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1),
     [(2, 4, 5, 6)], False),
    ("convT2d-groups-dil", "ConvTranspose2d", (4, 6, 3), dict(groups=2, dilation=2, bias=False), [(2, 4, 5, 4)],
     False),
    ("bn1d", "BatchNorm1d", (3,), {}, [(8, 3)], True),
    ("bn1d-3d", "BatchNorm1d", (3,), {}, [(4, 3, 5)], False),
    ("bn2d", "BatchNorm2d", (3,), {}, [(4, 3, 5, 6)], True),
    ("bn2d-momentum-none", "BatchNorm2d", (3,), dict(momentum=None, eps=1e-3), [(4, 3, 2, 3)], False),
    ("bn2d-noaffine", "BatchNorm2d", (3,), dict(affine=False), [(4, 3, 2, 3)], False),
    ("bn2d-nostats", "BatchNorm2d", (3,), dict(track_running_stats=False), [(4, 3, 2, 3)], False),
    ("layernorm", "LayerNorm", (6,), {}, [(3, 4, 6)], True),
    ("layernorm-2d", "LayerNorm", ((4, 6),), {}, [(3, 4, 6)], False),
    ("layernorm-nobias", "LayerNorm", (6,), dict(bias=False), [(5, 6)], False),
    ("groupnorm", "GroupNorm", (2, 6), {}, [(3, 6, 4, 5)], True),
    ("groupnorm-noaffine", "GroupNorm", (3, 6), dict(affine=False), [(2, 6, 7)], False),
    ("maxpool", "MaxPool2d", (2,), {}, [(2, 3, 6, 8)], True),
    ("maxpool-stride-pad", "MaxPool2d", (3,), dict(stride=2, padding=1), [(2, 3, 7, 8)], False),
    ("maxpool-ceil-dil", "MaxPool2d", ((2, 3),), dict(stride=(1, 2), ceil_mode=True, dilation=(2, 1)),
     [(2, 3, 7, 8)], False),
    ("avgpool", "AvgPool2d", (2,), {}, [(2, 3, 6, 8)], True),
    ("avgpool-pad", "AvgPool2d", (3,), dict(stride=2, padding=1), [(2, 3, 7, 8)], False),
    ("avgpool-pad-nocount", "AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False),
     [(2, 3, 7, 8)], False),
    ("avgpool-ceil", "AvgPool2d", ((2, 3),), dict(stride=(1, 2), ceil_mode=True), [(2, 3, 7, 8)], False),
    ("adaptive-1", "AdaptiveAvgPool2d", (1,), {}, [(2, 3, 7, 8)], False),
    ("adaptive-2x3", "AdaptiveAvgPool2d", ((2, 3),), {}, [(2, 3, 7, 8)], True),
    ("adaptive-3xNone", "AdaptiveAvgPool2d", ((3, None),), {}, [(2, 3, 7, 8)], False),
    ("prelu", "PReLU", (3,), {}, [(2, 3, 4)], False),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_grads(case, dtype):
    _, cls, args, kw, shapes, _ = case
    rng = np.random.default_rng(1)
    ours, theirs = _make(cls, args, kw, dtype)
    check_layer(ours, theirs, [rand(rng, *s, dtype=dtype) for s in shapes], dtype)


@pytest.mark.parametrize("case", [c for c in LAYERS if c[5]], ids=[c[0] for c in LAYERS if c[5]])
def test_layer_grads_lazy(case):
    _, cls, args, kw, shapes, _ = case
    rng = np.random.default_rng(2)
    ours, theirs = _make(cls, args, kw, "float32")
    check_layer(ours, theirs, [rand(rng, *s, dtype="float32") for s in shapes], "float32", lazy=True)


def test_maxpool_kink_free_input():
    """Max pooling with distinct values (no ties): the gradient routes exactly as torch's."""
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float64) / 10
    ours, theirs = _make("MaxPool2d", (3,), dict(stride=2, padding=1), "float64")
    check_layer(ours, theirs, [x], "float64")


ACTS = [("ReLU", {}), ("ReLU6", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ELU", {"alpha": 0.7}), ("SELU", {}),
        ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("SiLU", {}), ("Sigmoid", {}), ("Tanh", {}),
        ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 3.0}), ("Softsign", {}), ("Softmax", {"dim": 1}),
        ("LogSoftmax", {"dim": -1}), ("Hardtanh", {"min_val": -0.5, "max_val": 2}), ("Mish", {})]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", ACTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ACTS)])
def test_activation_grads(name, kw, dtype):
    rng = np.random.default_rng(4)
    x = rand(rng, 3, 4, 5, dtype=dtype) * 4
    ours, theirs = _make(name, (), kw, dtype)
    check_layer(ours, theirs, [x], dtype)
    if name in ("GELU", "Softmax", "Mish"):
        check_layer(*_make(name, (), kw, "float32"), [x.astype(np.float32)], "float32", lazy=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_grads(dtype):
    idx = np.array([[1, 2, 9, 1], [0, 3, 3, 2]])
    for kw in (dict(), dict(padding_idx=2)):
        for lazy in ((False, True) if dtype == "float32" else (False,)):
            ours, theirs = _make("Embedding", (10, 4), kw, dtype)
            check_layer(ours, theirs, [idx], dtype, lazy=lazy, randomize=False)


def test_embedding_padding_row_gets_no_gradient():
    """Regression: the padding_idx row used to receive gradient (torch gives it none), even when
    it holds non-zero values (which the forward still returns)."""
    ours, theirs = _make("Embedding", (6, 3), dict(padding_idx=-2), "float64")
    with torch.no_grad():
        theirs.weight[4] = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    check_layer(ours, theirs, [np.array([4, 1, 4, 0, 4])], "float64", randomize=False)
    w = F.array(np.arange(18.0).reshape(6, 3))
    ours.load_state_dict({"weight": w.read()})
    (g,) = F.grad(ours(F.array([[4, 5], [4, 4]])).sum(), [ours.weight])
    assert not np.any(g.read()[4]) and np.all(g.read()[5] == 1)


RNN_KW = [dict(), dict(num_layers=2, batch_first=True), dict(bias=False), dict(bidirectional=True, num_layers=2)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kw", RNN_KW, ids=["plain", "2layer-bf", "nobias", "bidir"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_rnn_grads(kind, kw, dtype):
    rng = np.random.default_rng(5)
    ours, theirs = _make(kind, (3, 5), kw, dtype)
    x = rand(rng, 2, 6, 3, dtype=dtype) if kw.get("batch_first") else rand(rng, 6, 2, 3, dtype=dtype)
    nl = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    h0 = rand(rng, nl, 2, 5, dtype=dtype)
    lazy = dtype == "float32" and not kw
    if kind == "LSTM":
        c0 = rand(rng, nl, 2, 5, dtype=dtype)

        class Wrap(torch.nn.Module):  # torch's LSTM takes (h0, c0) as one tuple argument
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, h, c):
                return self.m(x, (h, c))

        class OWrap(nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, h, c):
                return self.m(x, (h, c))

        check_layer(OWrap(ours), Wrap(theirs), [x, h0, c0], dtype, randomize=False, lazy=lazy)
    else:
        check_layer(ours, theirs, [x, h0], dtype, randomize=False, lazy=lazy)
    # zero initial state (no h0 input)
    check_layer(*_make(kind, (3, 5), kw, dtype), [x], dtype, randomize=False)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_grads(batch_first, dtype):
    rng = np.random.default_rng(6)
    ours, theirs = _make("MultiheadAttention", (8, 2), dict(batch_first=batch_first), dtype)
    n, lq, lk = 3, 5, 4
    q = rand(rng, n, lq, 8, dtype=dtype) if batch_first else rand(rng, lq, n, 8, dtype=dtype)
    k = rand(rng, n, lk, 8, dtype=dtype) if batch_first else rand(rng, lk, n, 8, dtype=dtype)
    v = rand(rng, *k.shape, dtype=dtype)
    kpm = np.zeros((n, lk), bool)
    kpm[1, 3] = kpm[2, 1] = True
    mask = np.triu(np.ones((lq, lk), bool), 1)  # every query keeps key 0
    check_layer(ours, theirs, [q, k, v], dtype)
    ours, theirs = _make("MultiheadAttention", (8, 2), dict(batch_first=batch_first), dtype)
    check_layer(ours, theirs, [q, k, v], dtype, call_kw=dict(key_padding_mask=kpm, attn_mask=mask),
                lazy=dtype == "float32")
    # self-attention: one input used as query, key and value
    ours, theirs = _make("MultiheadAttention", (8, 2), dict(batch_first=batch_first, bias=False), dtype)

    class Self(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x, x, x, average_attn_weights=False)

    class TSelf(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x, x, x, average_attn_weights=False)

    check_layer(Self(ours), TSelf(theirs), [q], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer_grads(norm_first, activation, dtype):
    """Train mode (dropout 0), batch first, key padding; the sequence-first form with a causal mask below."""
    rng = np.random.default_rng(7)
    kw = dict(dim_feedforward=16, activation=activation, norm_first=norm_first, dropout=0.0, batch_first=True)
    ours, theirs = _make("TransformerEncoderLayer", (8, 2), kw, dtype)
    x = rand(rng, 3, 5, 8, dtype=dtype)
    kpm = np.zeros((3, 5), bool)
    kpm[0, 4] = True
    check_layer(ours, theirs, [x], dtype, call_kw=dict(src_key_padding_mask=kpm),
                lazy=dtype == "float32" and norm_first)
    kw["batch_first"] = False
    ours, theirs = _make("TransformerEncoderLayer", (8, 2), kw, dtype)
    check_layer(ours, theirs, [x.transpose(1, 0, 2).copy()], dtype, call_kw=dict(src_mask=np.triu(np.ones((5, 5),
                bool), 1)))


def test_multihead_attention_kdim_vdim_grads():
    rng = np.random.default_rng(10)
    kw = dict(kdim=5, vdim=3, batch_first=True)
    ours, theirs = _make("MultiheadAttention", (8, 2), kw, "float64")
    q, k, v = rand(rng, 2, 4, 8), rand(rng, 2, 6, 5), rand(rng, 2, 6, 3)
    check_layer(ours, theirs, [q, k, v], "float64")


# ---------------------------------------------------------------------------------------------
# losses
def _probs(rng, shape, axis=1):
    p = np.exp(rng.standard_normal(shape))
    return p / p.sum(axis, keepdims=True)


def _loss_case(name, rng):
    """(our fn, torch fn, inputs, which inputs are differentiable, kwargs for ours/torch)."""
    x = rng.standard_normal((5, 4)) * 2
    y = rng.standard_normal((5, 4))
    idx = rng.integers(0, 4, 5)
    idx3 = rng.integers(0, 4, (3, 2, 3))
    x3 = rng.standard_normal((3, 4, 2, 3)) * 2
    w = rng.random(4) + 0.5
    cases = {
        "ce": (L.cross_entropy, TF.cross_entropy, [x, idx], [True, False], {}),
        "ce-4d": (L.cross_entropy, TF.cross_entropy, [x3, idx3], [True, False], {}),
        "ce-smooth": (L.cross_entropy, TF.cross_entropy, [x, idx], [True, False], dict(label_smoothing=0.2)),
        "ce-ignore": (L.cross_entropy, TF.cross_entropy, [x, np.where(np.arange(5) == 1, 2, idx)], [True, False],
                      dict(ignore_index=2)),
        "ce-weight-all": (L.cross_entropy, TF.cross_entropy, [x3, np.where(idx3 == 0, 1, idx3)], [True, False],
                          dict(weight=w, ignore_index=1, label_smoothing=0.1)),
        "ce-sum": (L.cross_entropy, TF.cross_entropy, [x, idx], [True, False], dict(reduction="sum")),
        "ce-none": (L.cross_entropy, TF.cross_entropy, [x3, idx3], [True, False], dict(reduction="none")),
        "ce-probs": (L.cross_entropy, TF.cross_entropy, [x3, _probs(rng, x3.shape)], [True, True], {}),
        "ce-probs-smooth-w": (L.cross_entropy, TF.cross_entropy, [x, _probs(rng, x.shape)], [True, True],
                              dict(label_smoothing=0.3, weight=w)),
        "nll": (L.nll_loss, TF.nll_loss, [x, idx], [True, False], {}),
        "nll-weight-ignore": (L.nll_loss, TF.nll_loss, [x3, idx3], [True, False], dict(weight=w, ignore_index=0)),
        "nll-none": (L.nll_loss, TF.nll_loss, [x, idx], [True, False], dict(reduction="none")),
        "mse": (L.mse_loss, TF.mse_loss, [x, y], [True, True], {}),
        "mse-sum": (L.mse_loss, TF.mse_loss, [x, y], [True, True], dict(reduction="sum")),
        "l1": (L.l1_loss, TF.l1_loss, [x, y], [True, True], {}),
        "l1-none": (L.l1_loss, TF.l1_loss, [x, y], [True, True], dict(reduction="none")),
        "smooth_l1": (L.smooth_l1_loss, TF.smooth_l1_loss, [x, y], [True, True], {}),
        "smooth_l1-beta": (L.smooth_l1_loss, TF.smooth_l1_loss, [x, y], [True, True], dict(beta=0.5)),
        "huber": (L.huber_loss, TF.huber_loss, [x, y], [True, True], {}),
        "huber-delta-sum": (L.huber_loss, TF.huber_loss, [x, y], [True, True], dict(delta=1.5, reduction="sum")),
        "bce": (L.binary_cross_entropy, TF.binary_cross_entropy, [1 / (1 + np.exp(-x)), rng.random((5, 4))],
                [True, True], {}),
        "bce-weight": (L.binary_cross_entropy, TF.binary_cross_entropy,
                       [1 / (1 + np.exp(-x)), rng.random((5, 4))], [True, True], dict(weight=w)),
        "bce_logits": (L.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                       [x * 5, rng.random((5, 4))], [True, True], {}),
        "bce_logits-w-pos": (L.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                             [x, rng.random((5, 4))], [True, True], dict(weight=w, pos_weight=w[::-1].copy())),
        "kl_div": (L.kl_div, TF.kl_div, [np.log(_probs(rng, x.shape)), _probs(rng, x.shape)], [True, True],
                   dict(reduction="batchmean")),
        "kl_div-logt": (L.kl_div, TF.kl_div, [np.log(_probs(rng, x.shape)), np.log(_probs(rng, x.shape))],
                        [True, True], dict(reduction="sum", log_target=True)),
    }
    return cases[name]


LOSSES = ["ce", "ce-4d", "ce-smooth", "ce-ignore", "ce-weight-all", "ce-sum", "ce-none", "ce-probs",
          "ce-probs-smooth-w", "nll", "nll-weight-ignore", "nll-none", "mse", "mse-sum", "l1", "l1-none",
          "smooth_l1", "smooth_l1-beta", "huber", "huber-delta-sum", "bce", "bce-weight", "bce_logits",
          "bce_logits-w-pos", "kl_div", "kl_div-logt"]
LAZY_LOSSES = {"ce-weight-all", "ce-probs-smooth-w", "nll-weight-ignore", "smooth_l1", "bce_logits-w-pos", "kl_div"}


def _check_loss(name, dtype, lazy):
    rng = np.random.default_rng(8)
    ours_fn, torch_fn, inputs, diff, kw = _loss_case(name, rng)
    inputs = [a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a for a in inputs]
    okw = {k: (F.array(v.astype(dtype)) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    tkw = {k: (torch.from_numpy(v.astype(dtype)) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    with F.lazy_eval(lazy):
        xs = [_leaf(a) if d else F.array(a) for a, d in zip(inputs, diff)]
        out = ours_fn(*xs, **okw)
        cot = rand(rng, *out.shape, dtype=dtype)
        grads = F.grad((out * F.array(cot)).sum(), [x for x, d in zip(xs, diff) if d])
        grads = [g.read() for g in grads]
    txs = [torch.from_numpy(a.copy()).requires_grad_(d) for a, d in zip(inputs, diff)]
    tout = torch_fn(*txs, **tkw)
    close(out, tout, dtype, "loss value")
    (tout * torch.from_numpy(cot)).sum().backward()
    for i, g in enumerate(grads):
        close(g, [t for t, d in zip(txs, diff) if d][i].grad, dtype, f"{name}: d/d input {i}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_grads(name, dtype):
    _check_loss(name, dtype, lazy=False)


@pytest.mark.parametrize("name", sorted(LAZY_LOSSES))
def test_loss_grads_lazy(name):
    _check_loss(name, "float32", lazy=True)


# ---------------------------------------------------------------------------------------------
# optimiser trajectories: our autograd + mnn_optim vs torch autograd + torch.optim
def _mlp(lib, dtype):
    return lib.Sequential(lib.Linear(6, 16, **dtype), lib.ReLU(), lib.Linear(16, 3, **dtype))


def _convnet(lib, dtype):
    return lib.Sequential(lib.Conv2d(2, 4, 3, padding=1, **dtype), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Conv2d(4, 4, 3, groups=2, **dtype), lib.Tanh(), lib.Flatten(),
                          lib.Linear(4, 3, **dtype))


OPTS = [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01)),
        ("AdamW", dict(lr=0.01, weight_decay=0.1))]


def _train(net_fn, opt_name, hp, dtype, lazy, style):
    rng = np.random.default_rng(9)
    theirs = net_fn(torch.nn, {}).to(TORCH_DT[dtype])
    ours = net_fn(nn, {"dtype": dtype})
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    shape = (8, 6) if net_fn is _mlp else (8, 2, 6, 6)
    xs = [rand(rng, *shape, dtype=dtype) for _ in range(4)]
    ys = [rng.integers(0, 3, 8) for _ in range(4)]
    topt = getattr(torch.optim, opt_name)(theirs.parameters(), foreach=False, **hp)
    params = [p for _, p in ours.named_parameters()]
    oopt = getattr(optim, opt_name)(params, **hp)
    names = [n for n, _ in ours.named_parameters()]
    tparams = dict(theirs.named_parameters())
    with F.lazy_eval(lazy):
        for step in range(20):
            x, y = xs[step % 4], ys[step % 4]
            topt.zero_grad()
            tloss = TF.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
            tloss.backward()
            topt.step()
            loss = L.cross_entropy(ours(F.array(x)), F.array(y))
            if style == "step":
                oopt.step(loss)
            else:
                oopt.apply(F.grad(loss, params))
            close(loss, tloss, dtype, f"loss at step {step}")
            for n, p in ours.named_parameters():
                close(p, tparams[n], dtype, f"{n} after step {step}")
    assert names == [n for n, _ in ours.named_parameters()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt_name,hp", OPTS, ids=[o[0] for o in OPTS])
@pytest.mark.parametrize("net", ["mlp", "convnet"])
def test_training_trajectory(net, opt_name, hp, dtype):
    net_fn = _mlp if net == "mlp" else _convnet
    _train(net_fn, opt_name, hp, dtype, lazy=False, style="apply" if opt_name != "Adam" else "step")


@pytest.mark.parametrize("opt_name,hp", OPTS, ids=[o[0] for o in OPTS])
def test_training_trajectory_lazy(opt_name, hp):
    _train(_convnet, opt_name, hp, "float32", lazy=True, style="step")
