"""Forward parity of mnn_nn layers with torch.nn (same weights, same inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mnn_expr as F
import mnn_nn as nn

torch.set_num_threads(1)
RNG = np.random.default_rng(0)
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10)}
TORCH_DT = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture(params=["eager", "lazy"], autouse=True)
def mode(request):
    """Every test runs eagerly and lazily (MNN trains in lazy mode)."""
    with F.lazy_eval(request.param == "lazy"):
        yield request.param


def rand(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def sync(ours, theirs):
    """Loads torch's state dict into ours (names must match) and returns ours."""
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(sd)
    return ours


def close(a, b, dtype="float32", **kw):
    tol = dict(TOL[dtype])
    tol.update(kw)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    np.testing.assert_allclose(np.asarray(a.read() if isinstance(a, F.Var) else a), b, **tol)


def run_both(ours, theirs, *inputs, dtype="float32", **kw):
    theirs = theirs.to(TORCH_DT[dtype])
    sync(ours, theirs)
    out = ours(*[F.array(x) for x in inputs])
    ref = theirs(*[torch.from_numpy(x) for x in inputs])
    close(out, ref, dtype, **kw)
    return ours, theirs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear(dtype):
    run_both(nn.Linear(5, 3, dtype=dtype), torch.nn.Linear(5, 3), rand(4, 5, dtype=dtype), dtype=dtype)
    run_both(nn.Linear(5, 3, bias=False, dtype=dtype), torch.nn.Linear(5, 3, bias=False),
             rand(2, 7, 5, dtype=dtype), dtype=dtype)
    assert nn.linear(4, 2).weight.shape == (2, 4)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(padding=(1, 2), dilation=2),
    dict(groups=2, padding="same"),
    dict(padding="valid", bias=False),
    dict(padding=2, padding_mode="reflect"),
    dict(padding=1, padding_mode="replicate", stride=2),
    dict(padding=(1, 2), padding_mode="circular"),
    dict(padding="same", padding_mode="reflect", dilation=2),
])
def test_conv2d(kw):
    ours = nn.Conv2d(4, 6, 3, **kw)
    theirs = torch.nn.Conv2d(4, 6, 3, **kw)
    run_both(ours, theirs, rand(2, 4, 9, 8))
    run_both(nn.Conv2d(4, 6, 3, **kw), torch.nn.Conv2d(4, 6, 3, **kw), rand(4, 7, 7))  # unbatched


def test_conv2d_float64_and_depthwise():
    run_both(nn.Conv2d(3, 6, (3, 2), padding=1, groups=3, dtype="float64"),
             torch.nn.Conv2d(3, 6, (3, 2), padding=1, groups=3), rand(2, 3, 6, 5, dtype="float64"), dtype="float64")


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(groups=2, padding="same"),
                                dict(padding=3, padding_mode="reflect"), dict(padding=1, padding_mode="circular"),
                                dict(padding=2, padding_mode="replicate", bias=False)])
def test_conv1d(kw):
    run_both(nn.Conv1d(4, 6, 3, **kw), torch.nn.Conv1d(4, 6, 3, **kw), rand(2, 4, 11))
    run_both(nn.Conv1d(4, 6, 3, **kw), torch.nn.Conv1d(4, 6, 3, **kw), rand(4, 11))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, output_padding=1), dict(groups=2, dilation=2),
                                dict(stride=(2, 1), padding=(0, 1), bias=False)])
def test_conv_transpose2d(kw):
    run_both(nn.ConvTranspose2d(4, 6, 3, **kw), torch.nn.ConvTranspose2d(4, 6, 3, **kw), rand(2, 4, 5, 6))


def test_mnn_conv_factory():
    x = rand(1, 3, 9, 9)
    c = nn.conv(3, 8, [3, 3])
    assert c(F.array(x)).shape == (1, 8, 7, 7)
    c = nn.conv(3, 8, [3, 3], stride=[2, 2], padding_mode="SAME")
    assert c(F.array(x)).shape == (1, 8, 5, 5)
    c = nn.conv(3, 6, [3, 3], padding=[1, 1], padding_mode="CAFFE", depthwise=True)
    t = torch.nn.Conv2d(3, 6, 3, padding=1, groups=3)
    run_both(c, t, x)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (4, 3, 5, 6))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_train_eval(cls, shape, momentum):
    ours = getattr(nn, cls)(3, momentum=momentum)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    sync(ours, theirs)
    for _ in range(3):
        x = rand(*shape) * 2 + 1
        close(ours(F.array(x)), theirs(torch.from_numpy(x)))
    for name in ("running_mean", "running_var"):
        close(getattr(ours, name), getattr(theirs, name))
    assert int(ours.num_batches_tracked.item()) == 3
    ours.eval()
    theirs.eval()
    x = rand(*shape)
    close(ours(F.array(x)), theirs(torch.from_numpy(x)))


def test_batchnorm_options():
    x = rand(6, 4, 3, 3)
    for kw in (dict(affine=False), dict(track_running_stats=False), dict(eps=1e-3)):
        ours, theirs = nn.BatchNorm2d(4, **kw), torch.nn.BatchNorm2d(4, **kw)
        sync(ours, theirs)
        close(ours(F.array(x)), theirs(torch.from_numpy(x)))
        ours.eval()
        theirs.eval()
        close(ours(F.array(x)), theirs(torch.from_numpy(x)))
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.BatchNorm1d(4)(F.ones([1, 4]))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(4)(F.ones([2, 3, 2, 2]))


def test_mnn_batch_norm_momentum():
    bn = nn.batch_norm(3, dims=4, momentum=0.99)
    x = rand(4, 3, 2, 2)
    bn(F.array(x))
    n = x.size // 3
    want = 0.99 * 0 + 0.01 * x.mean(axis=(0, 2, 3))
    close(bn.running_mean, want)
    close(bn.running_var, 0.99 + 0.01 * x.var(axis=(0, 2, 3)) * n / (n - 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layernorm_groupnorm(dtype):
    for ours, theirs, x in [
        (nn.LayerNorm(6, dtype=dtype), torch.nn.LayerNorm(6), rand(3, 4, 6, dtype=dtype)),
        (nn.LayerNorm((4, 6), dtype=dtype), torch.nn.LayerNorm((4, 6)), rand(3, 4, 6, dtype=dtype)),
        (nn.LayerNorm(6, elementwise_affine=False, dtype=dtype), torch.nn.LayerNorm(6, elementwise_affine=False),
         rand(2, 6, dtype=dtype)),
        (nn.LayerNorm(6, bias=False, dtype=dtype), torch.nn.LayerNorm(6, bias=False), rand(2, 6, dtype=dtype)),
        (nn.GroupNorm(2, 6, dtype=dtype), torch.nn.GroupNorm(2, 6), rand(3, 6, 4, 5, dtype=dtype)),
        (nn.GroupNorm(3, 6, affine=False, dtype=dtype), torch.nn.GroupNorm(3, 6, affine=False),
         rand(2, 6, 7, dtype=dtype)),
    ]:
        theirs = theirs.to(TORCH_DT[dtype])
        if any(True for _ in theirs.parameters()):
            with torch.no_grad():
                for p in theirs.parameters():
                    p.uniform_(-1, 1)
        run_both(ours, theirs, x, dtype=dtype)


def test_dropout():
    d = nn.Dropout(0.3)
    x = np.ones((200, 100), np.float32)
    F.random.seed(1)
    y = d(F.array(x)).read()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    F.random.seed(1)
    np.testing.assert_array_equal(d(F.array(x)).read(), y)  # seeded
    d.eval()
    np.testing.assert_array_equal(d(F.array(x)).read(), x)
    assert nn.dropout(0.5).p == 0.5
    assert not np.any(nn.Dropout(1.0)(F.array(x)).read())


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True)])
def test_pooling(kw):
    x = rand(2, 3, 7, 8)
    run_both(nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), x)
    run_both(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), x)
    if kw.get("padding"):
        run_both(nn.AvgPool2d(**kw, count_include_pad=False), torch.nn.AvgPool2d(**kw, count_include_pad=False), x)
    run_both(nn.MaxPool2d(3, dilation=2), torch.nn.MaxPool2d(3, dilation=2), x)


@pytest.mark.parametrize("size", [1, (2, 3), (3, None), (7, 8)])
def test_adaptive_avg_pool(size):
    run_both(nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), rand(2, 3, 7, 8))


def test_embedding():
    ours, theirs = nn.Embedding(10, 4, padding_idx=2), torch.nn.Embedding(10, 4, padding_idx=2)
    assert not np.any(ours.weight.read()[2])
    idx = np.array([[1, 2, 9], [0, 3, 3]])
    sync(ours, theirs)
    close(ours(F.array(idx)), theirs(torch.from_numpy(idx)))
    with pytest.raises(TypeError):
        ours(F.array([1.0]))


def test_flatten_identity():
    x = rand(2, 3, 4, 5)
    run_both(nn.Flatten(), torch.nn.Flatten(), x)
    run_both(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x)
    run_both(nn.Flatten(2), torch.nn.Flatten(2), x)
    run_both(nn.Identity(), torch.nn.Identity(), x)
    run_both(nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1)), x)


ACTS = [("ReLU", {}), ("ReLU6", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ELU", {"alpha": 0.7}), ("SELU", {}),
        ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("SiLU", {}), ("Sigmoid", {}), ("Tanh", {}),
        ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 3.0}), ("Softsign", {}), ("Softmax", {"dim": 1}),
        ("Softmax", {"dim": -1}), ("LogSoftmax", {"dim": 1}), ("Hardtanh", {"min_val": -0.5, "max_val": 2}),
        ("Mish", {})]


@pytest.mark.parametrize("name,kw", ACTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations(name, kw, dtype):
    x = rand(3, 4, 5, dtype=dtype) * 4
    run_both(getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), x, dtype=dtype)


def test_softmax_default_dim_and_prelu():
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)]:
        x = rand(*shape)
        np.testing.assert_allclose(nn.Softmax()(F.array(x)).read(),
                                   torch.nn.functional.softmax(torch.from_numpy(x), dim=0 if len(shape) in (1, 3)
                                                               else 1).numpy(), rtol=1e-5, atol=1e-6)
    run_both(nn.PReLU(), torch.nn.PReLU(), rand(2, 3, 4))
    t = torch.nn.PReLU(3)
    with torch.no_grad():
        t.weight.uniform_(0, 1)
    run_both(nn.PReLU(3), t, rand(2, 3, 4))


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, batch_first=True), dict(bias=False),
                                dict(bidirectional=True, num_layers=2)])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_rnn(kind, kw):
    ours, theirs = getattr(nn, kind)(3, 5, **kw), getattr(torch.nn, kind)(3, 5, **kw)
    sync(ours, theirs)
    bf = kw.get("batch_first", False)
    x = rand(2, 6, 3) if bf else rand(6, 2, 3)
    ndir = 2 if kw.get("bidirectional") else 1
    h0 = rand(kw.get("num_layers", 1) * ndir, 2, 5)
    c0 = rand(kw.get("num_layers", 1) * ndir, 2, 5)
    if kind == "LSTM":
        out, (h, c) = ours(F.array(x), (F.array(h0), F.array(c0)))
        rout, (rh, rc) = theirs(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        close(c, rc)
        out2, _ = ours(F.array(x))  # zero initial state
        close(out2, theirs(torch.from_numpy(x))[0])
    else:
        out, h = ours(F.array(x), F.array(h0))
        rout, rh = theirs(torch.from_numpy(x), torch.from_numpy(h0))
    close(out, rout)
    close(h, rh)
    # unbatched input
    xu = rand(4, 3)
    close(ours(F.array(xu))[0], theirs(torch.from_numpy(xu))[0])


def _mha_pair(batch_first, **kw):
    ours = nn.MultiheadAttention(8, 2, batch_first=batch_first, **kw)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first, **kw)
    with torch.no_grad():
        if theirs.in_proj_bias is not None:
            theirs.in_proj_bias.uniform_(-0.5, 0.5)
            theirs.out_proj.bias.uniform_(-0.5, 0.5)
    sync(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(batch_first):
    ours, theirs = _mha_pair(batch_first)
    theirs.eval()
    q, k, v = (rand(3, 5, 8), rand(3, 4, 8), rand(3, 4, 8)) if batch_first else \
        (rand(5, 3, 8), rand(4, 3, 8), rand(4, 3, 8))
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    attn_bool = RNG.random((5, 4)) < 0.3
    attn_bool[:, 0] = False
    attn_float = rand(5, 4)
    kpm = np.zeros((3, 4), bool)
    kpm[1, 3] = kpm[2, 1] = True
    cases = [dict(), dict(attn_mask=attn_bool), dict(attn_mask=attn_float), dict(key_padding_mask=kpm),
             dict(attn_mask=attn_bool, key_padding_mask=kpm, average_attn_weights=False)]
    for c in cases:
        out, w = ours(F.array(q), F.array(k), F.array(v), **{n: (F.array(m) if isinstance(m, np.ndarray) else m)
                                                               for n, m in c.items()})
        rout, rw = theirs(tq, tk, tv, **{n: (torch.from_numpy(m) if isinstance(m, np.ndarray) else m)
                                         for n, m in c.items()})
        close(out, rout)
        close(w, rw)
    m3 = rand(3 * 2, 5, 4)
    close(ours(F.array(q), F.array(k), F.array(v), attn_mask=F.array(m3))[0],
          theirs(tq, tk, tv, attn_mask=torch.from_numpy(m3))[0])
    out, w = ours(F.array(q), F.array(k), F.array(v), need_weights=False)
    assert w is None
    close(out, theirs(tq, tk, tv, need_weights=False)[0])


def test_multihead_attention_unbatched_and_causal():
    ours, theirs = _mha_pair(False, bias=False)
    x = rand(5, 8)
    close(ours(F.array(x), F.array(x), F.array(x))[0], theirs(*(torch.from_numpy(x),) * 3)[0])
    xb = rand(5, 2, 8)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    close(ours(*(F.array(xb),) * 3, is_causal=True)[0], theirs(*(torch.from_numpy(xb),) * 3, attn_mask=mask)[0])


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_layer(norm_first, activation, batch_first):
    kw = dict(dim_feedforward=16, activation=activation, norm_first=norm_first, batch_first=batch_first)
    ours, theirs = nn.TransformerEncoderLayer(8, 2, **kw), torch.nn.TransformerEncoderLayer(8, 2, **kw)
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            if n.startswith("norm"):
                p.uniform_(0.5, 1.5)
    sync(ours, theirs)
    ours.eval()
    theirs.eval()
    x = rand(3, 5, 8) if batch_first else rand(5, 3, 8)  # N=3, L=5
    kpm = np.zeros((3, 5), bool)
    kpm[0, 4] = True
    close(ours(F.array(x)), theirs(torch.from_numpy(x)), atol=2e-5)
    mask = np.triu(np.ones((5, 5), bool), 1)
    # torch's fast path is only taken without masks; a float mask and key padding compare too
    close(ours(F.array(x), src_mask=F.array(mask), src_key_padding_mask=F.array(kpm)),
          theirs(torch.from_numpy(x), src_mask=torch.from_numpy(mask), src_key_padding_mask=torch.from_numpy(kpm)),
          atol=2e-5)


def test_transformer_dropout_train_mode_is_random_but_eval_is_not():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.5)
    x = F.array(rand(4, 2, 8))
    F.random.seed(3)
    a = layer(x).read()
    b = layer(x).read()
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).read(), layer(x).read())


def test_default_init_matches_torch_bounds():
    F.random.seed(0)
    lin = nn.Linear(50, 40)
    w = lin.weight.read()
    bound = 1 / np.sqrt(50)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound
    conv = nn.Conv2d(4, 8, 3, groups=2)
    fan_in = 2 * 9
    assert np.abs(conv.bias.read()).max() <= 1 / np.sqrt(fan_in)
    assert lin.weight.requires_grad and lin.weight.op_type == "Trainable"


def test_batchnorm_float64_running_stats():
    ours, theirs = nn.BatchNorm2d(3, momentum=0.3, dtype="float64"), torch.nn.BatchNorm2d(3, momentum=0.3).double()
    sync(ours, theirs)
    for _ in range(4):
        x = rand(5, 3, 2, 3, dtype="float64") * 3 - 1
        close(ours(F.array(x)), theirs(torch.from_numpy(x)), "float64")
    close(ours.running_mean, theirs.running_mean, "float64")
    close(ours.running_var, theirs.running_var, "float64")
    ours.eval()
    theirs.eval()
    close(ours(F.array(x)), theirs(torch.from_numpy(x)), "float64")


def test_constructor_and_input_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding must be"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="Conv2d: expected"):
        nn.Conv2d(3, 4, 3)(F.ones([3, 5]))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="does not end with"):
        nn.LayerNorm(4)(F.ones([2, 5]))
    with pytest.raises(ValueError, match="LSTM: expected input"):
        nn.LSTM(3, 4)(F.ones([2, 2, 5]))
    with pytest.raises(ValueError, match="h0 of shape"):
        nn.GRU(3, 4)(F.ones([2, 2, 3]), F.zeros([2, 2, 4]))
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=5)


def test_transformer_encoder():
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    theirs = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    with torch.no_grad():  # make the two copies differ
        for p in theirs.layers[1].parameters():
            p.add_(0.1)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0), 2,
                                 norm=nn.LayerNorm(8))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    sync(ours, theirs)
    x = rand(5, 3, 8)
    close(ours(F.array(x)), theirs(torch.from_numpy(x)), atol=2e-5)


def test_multihead_attention_kdim_vdim():
    ours = nn.MultiheadAttention(8, 4, kdim=5, vdim=3, batch_first=True)
    theirs = torch.nn.MultiheadAttention(8, 4, kdim=5, vdim=3, batch_first=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        theirs.in_proj_bias.uniform_(-0.5, 0.5)
    sync(ours, theirs)
    q, k, v = rand(2, 6, 8), rand(2, 4, 5), rand(2, 4, 3)
    out, w = ours(F.array(q), F.array(k), F.array(v))
    rout, rw = theirs(*(torch.from_numpy(a) for a in (q, k, v)))
    close(out, rout)
    close(w, rw)
    with pytest.raises(ValueError, match="last dims"):
        ours(F.array(q), F.array(q), F.array(v))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("pmode", ["zeros", "circular", "replicate"])
def test_conv_same_even_kernel(pmode):
    run_both(nn.Conv2d(2, 3, (4, 2), padding="same", padding_mode=pmode, dilation=(1, 3)),
             torch.nn.Conv2d(2, 3, (4, 2), padding="same", padding_mode=pmode, dilation=(1, 3)), rand(2, 2, 7, 9))
    run_both(nn.Conv1d(2, 3, 4, padding="same", padding_mode=pmode),
             torch.nn.Conv1d(2, 3, 4, padding="same", padding_mode=pmode), rand(2, 2, 7))
