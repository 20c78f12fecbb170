"""The .mnnx format and its runtime: export -> load / mnnx-run give the model's outputs;
dynamic axes; float16/int8 weights; MNN's save/load spellings; malformed files raise."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import mnn_expr as F
import mnn_nn as nn
from mnn_expr import _native
from mnn_nn.deploy import export, load, runtime_cli, trace
from tests.conftest import cpu_levels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.GELU(), nn.Linear(16, 10))


def _rand(*shape: int, seed: int = 0) -> F.Var:
    return F.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _cli() -> str:
    try:
        return runtime_cli()
    except FileNotFoundError as e:
        pytest.fail(str(e))


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


# ---- round trips ---------------------------------------------------------------------------------

def _models() -> dict:
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2))
    bn.eval()
    return {
        "lenet": (_lenet(), [_rand(2, 1, 8, 8)]),
        "mlp": (nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Softmax(dim=-1)), [_rand(4, 5)]),
        "bn_eval": (bn, [_rand(2, 3, 9, 9)]),
        "layer_norm": (nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6)), [_rand(3, 6)]),
        "two_io": (lambda a, b: (F.matmul(a, b), F.exp(a).sum(axis=1)), [_rand(2, 3), _rand(3, 4, seed=1)]),
        "dict_out": (lambda a: {"sq": a * a, "neg": -a}, [_rand(3)]),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_round_trip_matches_the_model(name, tmp):
    model, xs = _models()[name]
    want = model(*xs)
    wants = [want] if isinstance(want, F.Var) else list(want.values()) if isinstance(want, dict) else list(want)
    path = os.path.join(tmp, f"{name}.mnnx")
    export(model, xs, path)
    m = load(path)
    got = m.run(*xs)
    assert len(got) == len(wants)
    for g, w in zip(got, wants):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)
    with F.lazy_eval(True):  # the same file run lazily: one planned native call
        lazy = m.run(*xs)
    for g, w in zip(lazy, wants):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)


def test_loaded_model_on_values_runs_a_prepared_plan_and_records_on_gradients(tmp):
    """Called on computed inputs (no gradients, no placeholders) a loaded model runs the plan it
    prepared for the input signature, as the runtime does, and gives values; with an input that
    requires gradients it records its ops (gradients flow through), the same numbers."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5))
    x = _rand(2, 3, 6, 6)
    path = os.path.join(tmp, "m.mnnx")
    export(model, [x], path, dynamic_axes={"input0": [0]})
    m = load(path)
    want = model(x).numpy()
    for mode in (False, True):
        with F.lazy_eval(mode):
            y = m(x)
            assert not y._has_history  # values: nothing recorded
            np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m(_rand(3, 3, 6, 6, seed=4)).numpy(), model(_rand(3, 3, 6, 6, seed=4)).numpy(),
                               rtol=1e-5, atol=1e-6)  # another signature: another plan
    xg = F.array(x.numpy())
    xg.requires_grad = True
    yg = m(xg)
    assert yg._has_history
    np.testing.assert_allclose(yg.numpy(), want, rtol=1e-5, atol=1e-6)
    (g,) = F.grad(yg.sum(), [xg])
    assert g.shape == x.shape and np.abs(g.numpy()).sum() > 0


def test_lstm_and_attention_round_trip(tmp):
    lstm = nn.LSTM(4, 5, batch_first=True)
    x = _rand(2, 3, 4)
    export(lambda v: lstm(v)[0], [x], os.path.join(tmp, "lstm.mnnx"))
    got = load(os.path.join(tmp, "lstm.mnnx"))(x).numpy()
    np.testing.assert_allclose(got, lstm(x)[0].numpy(), rtol=1e-6, atol=1e-6)
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    enc.eval()
    y = _rand(2, 5, 8)
    export(enc, [y], os.path.join(tmp, "enc.mnnx"))
    np.testing.assert_allclose(load(os.path.join(tmp, "enc.mnnx"))(y).numpy(), enc(y).numpy(), rtol=1e-5, atol=1e-5)


def test_dynamic_batch_runs_at_other_sizes(tmp):
    model = _lenet()
    path = os.path.join(tmp, "dyn.mnnx")
    export(model, [_rand(2, 1, 8, 8)], path, dynamic_axes={"input0": [0]})
    m = load(path)
    assert m.inputs == [("input0", "float32", (None, 1, 8, 8))]
    assert m.outputs == [("output0", "float32", (None, 10))]
    for b in (1, 5):
        x = _rand(b, 1, 8, 8, seed=b)
        np.testing.assert_allclose(m(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"input0.*float32\[\?, 1, 8, 8\]"):
        m(_rand(2, 1, 9, 8))  # a static dim changed
    with pytest.raises(ValueError, match="input0"):
        m(F.zeros((2, 1, 8, 8), dtype="float64"))


def test_static_export_refuses_other_sizes(tmp):
    path = os.path.join(tmp, "static.mnnx")
    export(_lenet(), [_rand(2, 1, 8, 8)], path)
    with pytest.raises(ValueError, match=r"float32\[2, 1, 8, 8\]"):
        load(path)(_rand(3, 1, 8, 8))


def test_shape_dependent_constant_is_refused_with_dynamic_axes():
    def f(x):  # a constant built from the traced batch size cannot follow a dynamic axis
        return x + F.zeros((x.shape[0], 1))
    with pytest.raises(ValueError, match="depends on a dynamic axis"):
        trace(f, [F.ones((2, 3))], dynamic_axes={"input0": [0]})


@pytest.mark.parametrize("weights,tol", [("float16", 2e-3), ("int8", 3e-2)])
def test_compressed_weights(weights, tol, tmp):
    model = _lenet()
    x = _rand(3, 1, 8, 8)
    path, path32 = os.path.join(tmp, f"{weights}.mnnx"), os.path.join(tmp, "f32.mnnx")
    export(model, [x], path, weights=weights)
    export(model, [x], path32)
    assert os.path.getsize(path) < os.path.getsize(path32)
    want, got = model(x).numpy(), load(path)(x).numpy()
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    assert load(path).producer.startswith("mnnpy")


def test_int8_weights_are_per_channel_symmetric(tmp):
    rows = np.array([[1], [10], [0.1], [0]], np.float32)  # one scale per output channel; an all-zero row
    w = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32) * rows
    x = F.eye(6)
    path = os.path.join(tmp, "q.mnnx")
    export(lambda v: F.matmul(v, F.array(w).T), [x], path, weights="int8", optimize=False)  # (w as stored)
    scales = np.abs(w).max(axis=1) / 127
    scales[scales == 0] = 1
    deq = np.clip(np.round(w / scales[:, None]), -127, 127) * scales[:, None]
    np.testing.assert_allclose(load(path)(x).numpy(), deq.T, rtol=1e-6, atol=1e-7)


# ---- MNN's spellings -------------------------------------------------------------------------------

def test_mnn_save_and_load_spellings(tmp):
    model = _lenet()
    model.eval()
    inp = F.placeholder([1, 1, 8, 8], name="data")
    out = model(inp)
    out.name = "prob"
    path = os.path.join(tmp, "model.mnnx")
    F.save([out], path)
    x = _rand(1, 1, 8, 8)
    mod = nn.load_module_from_file(path, ["data"], ["prob"], thread_num=2)
    np.testing.assert_allclose(mod.forward(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    assert mod.get_info()["inputNames"] == ["data"]
    d = F.load_as_dict(path)
    assert set(d) == {"data", "prob"}
    d["data"].write(x.numpy())
    np.testing.assert_allclose(d["prob"].numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        nn.load_module_from_file(path, ["x"], ["prob"])

    snap = os.path.join(tmp, "params.snapshot")  # a parameter snapshot, MNN style
    F.save(model.parameters, snap)
    restored = F.load_as_list(snap)
    assert len(restored) == len(model.parameters)
    for r, p in zip(restored, model.parameters):
        np.testing.assert_array_equal(r.numpy(), p.numpy())


# ---- the CLI ----------------------------------------------------------------------------------------

def test_cli_runs_the_model_without_python(tmp):
    model = _lenet()
    x = _rand(4, 1, 8, 8, seed=7)
    path = os.path.join(tmp, "lenet.mnnx")
    export(model, [x], path, dynamic_axes={"input0": [0]})
    np.save(os.path.join(tmp, "x.npy"), x.numpy())
    out = subprocess.run([_cli(), path, os.path.join(tmp, "x.npy"), "--save", tmp, "--argmax", "--bench", "3",
                          "--threads", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    want = model(x).numpy()
    np.testing.assert_allclose(np.load(os.path.join(tmp, "output0.npy")), want, rtol=1e-6, atol=1e-6)
    assert "argmax: " + " ".join(str(i) for i in want.argmax(1)) in out.stdout
    assert f"bench: 3 runs, 1 threads, {_native.cpu_level()} kernels" in out.stdout
    info = subprocess.run([_cli(), path, "--info"], capture_output=True, text=True, timeout=60)
    assert "input  input0: float32[?, 1, 8, 8]" in info.stdout
    rnd = subprocess.run([_cli(), path, "--random", "--shape", "input0=3x1x8x8"], capture_output=True, text=True,
                         timeout=60)
    assert rnd.returncode == 0 and "output0: float32[3, 10]" in rnd.stdout, rnd.stderr


@pytest.mark.parametrize("args,msg", [
    (["missing.mnnx"], "cannot open"),
    (["{model}"], "takes 1 inputs, 0 given"),
    (["{model}", "{bad_npy}"], "input0"),
    (["{model}", "--bogus"], "unknown option"),
    (["{model}", "--random", "--shape", "input0=2x1"], "rank 2"),
])
def test_cli_errors_are_clear(args, msg, tmp):
    path = os.path.join(tmp, "m.mnnx")
    export(_lenet(), [_rand(2, 1, 8, 8)], path, dynamic_axes={"input0": [0]})
    bad = os.path.join(tmp, "bad.npy")
    np.save(bad, np.zeros((2, 2, 8, 8), np.float32))
    argv = [a.format(model=path, bad_npy=bad) for a in args]
    out = subprocess.run([_cli(), *argv], capture_output=True, text=True, timeout=60, cwd=tmp)
    assert out.returncode != 0 and msg in out.stderr, (out.returncode, out.stderr)


# ---- malformed files ----------------------------------------------------------------------------------

def _small_file(tmp) -> bytes:
    path = os.path.join(tmp, "small.mnnx")
    export(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)), [_rand(1, 1, 6, 6)],
           path, dynamic_axes={"input0": [0]}, metadata={"task": "test"})
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def small_limit():
    """Loaded models may compute values of at most 64 MiB (a corrupted file may ask for huge ones)."""
    _native.set_max_model_value_bytes(64 << 20)
    yield
    _native.set_max_model_value_bytes(1 << 34)


def _try(data: bytes) -> str:
    """Parses (and, if that succeeds, runs) a file's bytes: 'ok' or the exception's type name."""
    try:
        m = _native.MnnxModel.from_bytes(data)
        ins = []
        for _, dt, shape in m.inputs:
            ins.append(F.zeros([1 if d < 0 else min(d, 64) for d in shape], dtype=dt))
        m.run(ins)
        return "ok"
    except (ValueError, TypeError, IndexError, MemoryError) as e:
        assert str(e), "errors must say what is wrong"
        return type(e).__name__


def test_every_truncation_is_rejected(tmp, small_limit):
    data = _small_file(tmp)
    assert _try(data) == "ok"
    for n in range(len(data)):
        assert _try(data[:n]) == "ValueError", n


def test_random_corruption_never_crashes(tmp, small_limit):
    data = _small_file(tmp)
    rng = np.random.default_rng(1234)
    outcomes: dict = {}
    for _ in range(3000):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(0, len(b)))
            kind = rng.integers(0, 3)
            if kind == 0:
                b[pos] = int(rng.integers(0, 256))
            elif kind == 1:  # an extreme 32-bit count or index
                b[pos:pos + 4] = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000][int(rng.integers(0, 5))].to_bytes(4, "little")
            else:  # an extreme 64-bit offset or size
                b[pos:pos + 8] = [0, 2**63 - 1, 2**64 - 1, 64, 2**40][int(rng.integers(0, 5))].to_bytes(8, "little")
        r = _try(bytes(b[:len(data)]))
        outcomes[r] = outcomes.get(r, 0) + 1
    assert outcomes.get("ValueError", 0) > 1000, outcomes


def test_header_checks_name_the_problem(tmp):
    data = bytearray(_small_file(tmp))
    with pytest.raises(ValueError, match="not an .mnnx file"):
        _native.MnnxModel.from_bytes(b"PK\x03\x04" + bytes(data[4:]))
    v = bytearray(data)
    v[4:8] = (99).to_bytes(4, "little")
    with pytest.raises(ValueError, match="version 99"):
        _native.MnnxModel.from_bytes(bytes(v))
    with pytest.raises(ValueError, match="truncated or padded"):
        _native.MnnxModel.from_bytes(bytes(data) + b"\0")
    with pytest.raises(ValueError, match="cannot open"):
        load(os.path.join(tmp, "nope.mnnx"))


def test_atheris_fuzzer_runs_without_a_crash(tmp):
    """The atheris harness (tests/fuzz_mnnx.py) for a bounded time: a crash fails the test."""
    pytest.importorskip("atheris", reason="atheris has wheels for Linux, Python < 3.13 (the test extra installs it)")
    seed_dir = os.path.join(tmp, "corpus")
    os.makedirs(seed_dir)
    with open(os.path.join(seed_dir, "seed.mnnx"), "wb") as f:
        f.write(_small_file(tmp))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fuzz_mnnx.py"), seed_dir,
                          "-max_total_time=15", "-rss_limit_mb=4096", "-seed=1"],
                         capture_output=True, text=True, timeout=300, cwd=tmp,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])})
    report = out.stderr[-3000:]
    print(report)
    assert out.returncode == 0, report
    assert "Done" in out.stderr, report


# ---- an exported training step trains in the runtime ---------------------------------------------

def _setup(opt_name: str):
    import mnn_optim as optim
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    params = model.parameters()
    opt = optim.SGD(params, lr=0.05, momentum=0.9) if opt_name == "sgd" else optim.Adam(params, lr=0.01)

    def step(x, y):
        loss = nn.loss.cross_entropy(model(x), y)
        opt.step(loss)
        return loss
    return model, opt, step


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_exported_training_step_trains_like_python(opt_name, tmp):
    from mnn_nn.deploy import export_training_step
    x = _rand(8, 1, 8, 8, seed=2)
    y = F.array(np.random.default_rng(2).integers(0, 10, 8))
    model, opt, step = _setup(opt_name)
    path = os.path.join(tmp, "step.mnnx")
    export_training_step(step, [x, y], path, state=[model, opt], input_names=["x", "y"], output_names=["loss"])
    start = [p.numpy().copy() for p in model.parameters()]
    python = [step(x, y).item() for _ in range(5)]  # the Python model trains from the same start
    m = load(path)
    assert m.metadata["kind"] == "training step"
    runtime = [m(x, y)[0].item() for _ in range(5)]
    np.testing.assert_allclose(runtime, python, rtol=1e-5)
    assert runtime[-1] < runtime[0]
    for p, s in zip(model.parameters(), m.states[:len(start)]):
        np.testing.assert_allclose(s.numpy(), p.numpy(), rtol=1e-4, atol=1e-6)
    assert any(not np.array_equal(s, p.numpy()) for s, p in zip(start, model.parameters()))

    # The CLI, without Python: 5 steps from the file's initial state end at the same loss.
    np.save(os.path.join(tmp, "x.npy"), x.numpy())
    np.save(os.path.join(tmp, "y.npy"), y.numpy())
    out = subprocess.run([_cli(), path, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy"), "--steps", "5",
                          "--save", tmp], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(float(np.load(os.path.join(tmp, "loss.npy"))), python[-1], rtol=1e-5)


def test_trace_keeps_updated_inputs_nested_outputs_and_end_relative_slices(tmp):
    def f(x):
        return x[-2:], (x[:-1] * 2, {"tail": x[1:]})
    path = os.path.join(tmp, "f.mnnx")
    export(f, [F.ones((5, 3))], path, dynamic_axes={"input0": [0]})
    m = load(path)
    assert m.output_names == ["output0", "output1.0", "output1.1.tail"]
    x = np.arange(21, dtype=np.float32).reshape(7, 3)
    for g, w in zip(m.run(F.array(x)), [x[-2:], x[:-1] * 2, x[1:]]):
        np.testing.assert_array_equal(g.numpy(), w)

    def g(x):
        x[0] = 5.0  # rebinds the argument's handle: the graph still reads the input
        return x * 2
    export(g, [F.ones((4, 3))], path)
    want = x[:4].copy()
    want[0] = 5.0
    np.testing.assert_array_equal(load(path)(F.array(x[:4])).numpy(), want * 2)


def test_module_with_control_flow_exports_rolled(tmp):
    """A trainable Module's cond/scan stay if/loop ops in the export (no gradient is taken of it)."""
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, xs):
            h, ys = F.scan(lambda c, x: (F.tanh(self.lin(x) + c), c.sum()), F.zeros(3), xs)
            return F.cond(h.sum() > 0, lambda a: a * 2.0, lambda a: -a, h), ys

    m = Gate()
    xs = _rand(5, 3)
    assert {"if", "loop"} <= {n.op for n in trace(m, [xs]).nodes}
    assert m.lin.weight.requires_grad
    path = os.path.join(tmp, "gate.mnnx")
    export(m, [xs], path)
    for g, w in zip(load(path).run(xs), m(xs)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)


def test_inference_passes_fold_batchnorm_into_the_convolution(tmp):
    from mnn_nn.deploy.graph_passes import optimize
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, bias=False),
                      nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    rng = np.random.default_rng(5)
    for bn in (m[1], m[4]):  # non-trivial statistics
        bn.running_mean._rebind(F.array(rng.standard_normal(bn.num_features).astype(np.float32)))
        bn.running_var._rebind(F.array(rng.uniform(0.5, 2, bn.num_features).astype(np.float32)))
    m.eval()
    x = _rand(2, 3, 6, 6)
    g = trace(m, [x])
    counts = optimize(g)
    assert counts["fold_conv_affine"] == 8 and counts["fold_constants"] > 0
    assert [n.op for n in g.nodes] == ["conv2d", "relu", "conv2d", "reshape", "matmul", "add"]
    path = os.path.join(tmp, "bn.mnnx")
    export(m, [x], path)
    np.testing.assert_allclose(load(path)(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-5)
    export(m, [x], path, optimize=False)
    assert load(path)._model.n_nodes > len(g.nodes)


def test_dynamic_batch_through_control_flow_bodies(tmp):
    """Bodies of if/loop are generalised like the outer graph (their batch dim becomes dynamic)."""
    w = F.array(np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32))

    def model(xs, h0):  # xs: [T, B, 3]
        h, ys = F.scan(lambda c, x: (F.tanh(F.matmul(x, w) + c), c.sum(axis=-1)), h0, xs)
        return F.cond(h.sum() > 0, lambda a: a * 2.0, lambda a: -a, h), ys

    path = os.path.join(tmp, "dyn_cf.mnnx")
    export(model, [_rand(4, 2, 3), _rand(2, 3)], path, dynamic_axes={"input0": [1], "input1": [0]})
    m = load(path)
    assert m.inputs[0][2] == (4, None, 3)
    for b in (1, 5):
        x, h0 = _rand(4, b, 3, seed=b), _rand(b, 3, seed=b + 10)
        for got, want in zip(m.run(x, h0), model(x, h0)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="trip_count"):  # a scan over a dynamic length is refused, clearly
        export(model, [_rand(4, 2, 3), _rand(2, 3)], path, dynamic_axes={"input0": [0]})


def _conv_chain_model(tmp):
    """A 1x1 -> ReLU -> 1x1 chain exported and loaded: (torch-like model, input, loaded model)."""
    model = nn.Sequential(nn.Conv2d(3, 24, 1), nn.ReLU(), nn.Conv2d(24, 8, 1))
    x = _rand(1, 3, 6, 6)
    path = os.path.join(tmp, "chain.mnnx")
    export(model, [x], path)
    return model, x, load(path)


def _profiled(fn):
    """fn()'s result and the profile report of the steps it ran."""
    _native.profile_reset()
    _native.set_profiling(True)
    try:
        return fn(), _native.profile_report(5)
    finally:
        _native.set_profiling(False)
        _native.profile_reset()


@pytest.mark.skipif("avx512" not in cpu_levels(), reason="needs a CPU with AVX-512")
def test_loaded_model_replans_when_the_cpu_level_changes(tmp, monkeypatch):
    """A loaded model's prepared plan is kept per CPU level in force: its convolution chain runs
    blocked at AVX-512 and in NCHW at AVX2 (where blocked kernels do not pay), same values."""
    _, x, m = _conv_chain_model(tmp)
    monkeypatch.setenv("MNN_CPU_LEVEL", "avx512")
    y512, report512 = _profiled(lambda: m(x).numpy())
    monkeypatch.setenv("MNN_CPU_LEVEL", "avx2")
    y2, report2 = _profiled(lambda: m(x).numpy())
    assert "nchw16c" in report512 and "nchw16c" not in report2
    np.testing.assert_allclose(y2, y512, rtol=1e-5, atol=1e-6)


def test_loaded_model_on_values_follows_the_executor_settings(tmp, monkeypatch):
    """The plan a loaded model prepared is reused only under the same executor settings: with the
    layout pass switched off the next call runs unblocked convolutions (seen in the profile)."""
    monkeypatch.setenv("MNN_LAYOUT_ALL_LEVELS", "1")  # (by default the pass blocks at AVX-512 only)
    model, x, m = _conv_chain_model(tmp)

    def labels() -> str:
        got, report = _profiled(lambda: m(x).numpy())
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-6)
        return report
    assert "nchw16c" in labels()
    with F.passes_disabled("layout"):
        assert "nchw16c" not in labels()
    assert "nchw16c" in labels()
