"""Module API: registration, recursion, modes, state_dict, MNN compatibility, init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mnn_expr as F
import mnn_nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.register_buffer("steps", F.zeros([1]))
        self.plain = F.ones([2])  # a non-trainable Var is not a parameter
        self.factor = 2.0

    def forward(self, x):
        return self.head(nn.relu(self.bn(self.conv(x)))) * self.scale


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
        self.scale = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("steps", torch.zeros(1))

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x)))) * self.scale


def test_registration_and_recursion_match_torch():
    net, ref = Net(), TorchNet()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in ref.named_modules()]
    assert list(net.state_dict()) == list(ref.state_dict())
    assert [type(m).__name__ for m in net.children()] == ["Conv2d", "BatchNorm2d", "Sequential"]
    assert len(list(net.modules())) == 6
    assert len(net.buffers()) == 4
    assert "plain" not in dict(net.named_parameters()) and isinstance(net.plain, F.Var)
    assert net.factor == 2.0
    # parameters: MNN's list property and torch's method
    assert isinstance(net.parameters, list) and len(net.parameters) == 7
    assert [id(p) for p in net.parameters()] == [id(p) for p in net.parameters]
    assert [id(p) for p in net.parameters(recurse=False)] == [id(net.scale)]
    assert net.num_parameters() == sum(p.numel() for p in ref.parameters())
    # shared parameters are listed once
    net.head2 = net.head
    assert len(net.parameters) == 7
    # reassigning / deleting
    net.scale = nn.Parameter(np.zeros(3, np.float32))
    assert net.scale.read().sum() == 0
    with pytest.raises(TypeError, match="parameter 'scale'"):
        net.scale = F.ones([3])
    net.scale = None
    assert "scale" not in dict(net.named_parameters()) and net.scale is None
    del net.head2
    assert "head2" not in dict(net.named_children())
    net.conv = None
    assert "conv.weight" not in dict(net.named_parameters())


def test_forward_and_state_dict_roundtrip_with_torch():
    net, ref = Net(), TorchNet()
    net.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(net(F.array(x)).read(), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    sd = net.state_dict()
    ref2 = TorchNet()
    ref2.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    for k, v in ref2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k])
    net.eval()
    ref.eval()
    np.testing.assert_allclose(net(F.array(x)).read(), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)


def test_state_dict_copies_and_load_in_place():
    lin = nn.Linear(3, 2)
    w = lin.weight
    sd = lin.state_dict()
    sd["weight"][...] = 7  # the state dict holds copies
    assert not np.all(lin.weight.read() == 7)
    lin.load_state_dict(sd)
    assert lin.weight is w and np.all(w.read() == 7)  # same Var, new value (optimisers keep working)
    assert w.requires_grad and w.op_type == "Trainable"
    lin.load_state_dict({"weight": F.ones([2, 3]), "bias": F.zeros([2])})
    assert np.all(lin.weight.read() == 1)


def test_load_state_dict_errors():
    lin = nn.Linear(3, 2)
    good = lin.state_dict()
    with pytest.raises(KeyError, match="missing keys \\['bias'\\]"):
        lin.load_state_dict({"weight": good["weight"]})
    with pytest.raises(KeyError, match="unexpected keys \\['extra'\\]"):
        lin.load_state_dict({**good, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="'weight' has shape \\(3, 2\\)"):
        lin.load_state_dict({**good, "weight": np.zeros((3, 2), np.float32)})
    with pytest.raises(TypeError, match="'bias' has dtype float64"):
        lin.load_state_dict({**good, "bias": np.zeros(2)})
    before = lin.weight.read().copy()
    with pytest.raises(TypeError):  # nothing is loaded when one entry is bad
        lin.load_state_dict({"weight": np.zeros((2, 3), np.float32), "bias": np.zeros(2)})
    np.testing.assert_array_equal(lin.weight.read(), before)
    missing, unexpected = lin.load_state_dict({"weight": good["weight"], "x": 1}, strict=False)
    assert missing == ["bias"] and unexpected == ["x"]


def test_mnn_compat():
    net = Net()
    assert net.is_training and net.training
    net.train(False)
    assert not net.is_training and all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    vals = [F.array(np.full(p.shape, i, np.float32)) for i, p in enumerate(net.parameters)]
    assert net.load_parameters(vals) is True
    assert [float(p.read().flat[0]) for p in net.parameters] == list(range(7))
    with pytest.raises(ValueError, match="7 parameters"):
        net.load_parameters(vals[:3])
    with pytest.raises(ValueError, match="shape"):
        net.load_parameters(vals[1:] + vals[:1])
    m = nn.Module()
    assert m._add_parameter(F.ones([2])) == 0
    assert m.parameters[0].requires_grad
    assert nn.linear(4, 2)(F.ones([1, 4])).shape == (1, 2)
    x = F.ones([1, 2, 6, 6])
    assert net.onForward([x])[0].shape == (1, 3)
    with pytest.raises(NotImplementedError):
        nn.Module()(x)


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert len(seq[:2]) == 2 and seq[:2][0] is seq[0]
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    out = seq(F.ones([4, 2])).read()
    assert out.shape == (4, 1) and np.all((out > 0) & (out < 1))
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    ml.append(nn.Linear(2, 4))
    assert len(ml) == 3 and len(ml.parameters) == 6 and ml[2].out_features == 4
    with pytest.raises(IndexError):
        ml[3]
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert md.keys() == ["a", "b"] and "b" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]


def test_repr():
    r = repr(Net())
    assert r.startswith("Net(\n  (conv): Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1))")
    assert "(head): Sequential(\n    (0): Flatten(start_dim=1, end_dim=-1)" in r
    assert "(1): Linear(in_features=64, out_features=3, bias=True)  # weight: [3, 64], bias: [3]" in r
    assert r.rstrip().endswith(f"# {Net().num_parameters()} parameters")
    assert repr(nn.ReLU()) == "ReLU()"


def test_buffers_and_errors():
    m = nn.Module()
    m.register_buffer("a", F.ones([2]))
    m.register_buffer("tmp", F.ones([1]), persistent=False)
    assert list(m.state_dict()) == ["a"] and len(m.buffers()) == 2
    m.a = F.zeros([2])  # assigning to a buffer name keeps it a buffer
    assert list(m.state_dict()) == ["a"] and m.state_dict()["a"].sum() == 0

    class Bad(nn.Module):
        def __init__(self):
            self.x = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Bad()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = m.nope
    with pytest.raises(TypeError):
        m.add_module("x", 3)


def test_apply_and_requires_grad():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Linear", "Sequential"]
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters)
    assert len(net.parameters) == 4


# ---- init -----------------------------------------------------------------------------------


def stats(v):
    a = v.read()
    return a.mean(), a.std(), np.abs(a).max()


def test_init_distributions():
    F.random.seed(5)
    w = nn.Parameter(np.zeros((200, 300), np.float32))
    nn.init.uniform_(w, -2, 3)
    a = w.read()
    assert a.min() >= -2 and a.max() <= 3 and abs(a.mean() - 0.5) < 0.05
    assert w.requires_grad and w.op_type == "Trainable"
    nn.init.normal_(w, 1.0, 0.5)
    m, s, _ = stats(w)
    assert abs(m - 1) < 0.01 and abs(s - 0.5) < 0.01
    nn.init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6 / 500)
    assert stats(w)[2] <= bound and abs(stats(w)[1] - bound / math.sqrt(3)) < 0.02 * bound
    nn.init.xavier_normal_(w)
    assert abs(stats(w)[1] - math.sqrt(2 / 500)) < 0.01 * math.sqrt(2 / 500) * 5
    nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 300)
    assert stats(w)[2] <= bound and stats(w)[2] > 0.99 * bound
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(stats(w)[1] - math.sqrt(2 / 200)) < 0.02 * math.sqrt(2 / 200)
    c = nn.Parameter(np.zeros((8, 4, 3, 3), np.float32))
    nn.init.kaiming_uniform_(c, a=math.sqrt(5))
    assert stats(c)[2] <= 1 / math.sqrt(36)
    nn.init.constant_(w, 0.25)
    assert np.all(w.read() == 0.25)
    s = nn.Parameter(np.float32(0))
    nn.init.uniform_(s, 1, 2)
    assert s.shape == () and 1 <= s.item() <= 2 and s.requires_grad
    nn.init.zeros_(w)
    nn.init.ones_(c)
    assert w.read().sum() == 0 and np.all(c.read() == 1)
    nn.init.trunc_normal_(w, std=2.0, a=-1.0, b=1.0)
    assert np.abs(w.read()).max() <= 1.0


def test_init_gains_match_torch():
    for nl, p in [("linear", None), ("relu", None), ("tanh", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                  ("selu", None), ("sigmoid", None), ("conv2d", None)]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError):
        nn.init.calculate_gain("nope")


def test_orthogonal_and_generators():
    for shape in [(6, 4), (4, 6), (3, 2, 2)]:
        w = nn.Parameter(np.zeros(shape, np.float32))
        nn.init.orthogonal_(w, gain=1.5)
        a = w.read().reshape(shape[0], -1)
        g = a @ a.T if shape[0] <= a.shape[1] else a.T @ a
        np.testing.assert_allclose(g, 2.25 * np.eye(g.shape[0]), atol=1e-5)
    w1, w2 = (nn.Parameter(np.zeros((3, 3), np.float32)) for _ in range(2))
    nn.init.normal_(w1, generator=np.random.default_rng(7))
    nn.init.normal_(w2, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(w1.read(), w2.read())
    nn.init.uniform_(w1, generator=F.random.default_rng(3))
    nn.init.uniform_(w2, generator=F.random.default_rng(3))
    np.testing.assert_array_equal(w1.read(), w2.read())
    F.random.seed(11)
    a = nn.Linear(4, 4).weight.read()
    F.random.seed(11)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.read(), a)
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3, np.float32)))


def test_deepcopy_and_to():
    import copy
    net = Net()
    net.tied = net.head[1]  # shared module stays shared in the copy
    c = copy.deepcopy(net)
    assert c.tied is c.head[1] and c.head[1] is not net.head[1]
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), c.named_parameters()):
        assert n1 == n2 and p1 is not p2 and p2.requires_grad and p2.op_type == "Trainable"
        np.testing.assert_array_equal(p1.read(), p2.read())
    c.load_state_dict({k: v + 1 if v.dtype.kind == "f" else v for k, v in c.state_dict().items()})
    assert not np.allclose(c.conv.weight.read(), net.conv.weight.read())
    w = net.conv.weight
    net.double()
    assert net.conv.weight is w and w.dtype.name == "float64" and w.requires_grad
    assert net.bn.running_mean.dtype.name == "float64" and net.bn.num_batches_tracked.dtype.name == "int64"
    assert net(F.ones([1, 2, 6, 6], "float64")).dtype.name == "float64"
    net.float()
    assert w.dtype.name == "float32"
    with pytest.raises(TypeError):
        net.to("int32")


def test_save_load(tmp_path, monkeypatch):
    net = Net()
    net.bn(F.array(np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32)))  # stats move
    path = tmp_path / "net.npz"
    net.save(path)
    other = Net().load(path)
    for (k, a), (k2, b) in zip(net.state_dict().items(), other.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert int(other.bn.num_batches_tracked.item()) == 1
    with pytest.raises(KeyError, match="missing keys"):
        nn.Linear(2, 2).load(path)
    np.savez(tmp_path / "plain.npz", weight=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="not an mnn_nn checkpoint"):
        nn.Linear(2, 2).load(tmp_path / "plain.npz")
    # a save that dies half-way leaves the previous file and no temporary behind
    before = path.read_bytes()
    calls = []

    def dying(fh, a, **kw):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt("killed")
        return real(fh, a, **kw)

    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", dying)
    with pytest.raises(KeyboardInterrupt):
        Net().save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["net.npz", "plain.npz"]


_KILL_SCRIPT = r"""
import os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
import mnn_nn as nn

real = np.lib.format.write_array
def slow(fh, a, **kw):  # the save reaches its second array, says so, and hangs there
    if a.size > 1000:
        open(sys.argv[3], "w").close()
        time.sleep(60)
    return real(fh, a, **kw)
np.lib.format.write_array = slow
m = nn.Sequential(nn.Linear(4, 4), nn.Linear(400, 400))
m.save(sys.argv[1])
"""


def test_checkpoint_survives_a_killed_save(tmp_path):
    """SIGKILL during save (no cleanup can run): the previous checkpoint is intact and loads."""
    import os
    import signal
    import subprocess
    import sys
    import time

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(400, 400))
    path = tmp_path / "ckpt.npz"
    model.save(path)
    before = path.read_bytes()
    flag = tmp_path / "writing"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path), root, str(flag)])
    try:
        deadline = time.time() + 60
        while not flag.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert flag.exists(), "the child never reached the middle of its save"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    other = nn.Sequential(nn.Linear(4, 4), nn.Linear(400, 400)).load(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
