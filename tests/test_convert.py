"""`mnnpy convert`: an ONNX model (torch-exported, random weights) converted to .mnnx runs in
mnnx-run (no Python) with onnxruntime's outputs; dynamic batch kept; clear CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from mnn_nn.deploy import load, runtime_cli  # noqa: E402
from mnn_nn.deploy.cli import main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _onnx_cnn(path: str, dynamic: bool = True) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, groups=8), torch.nn.ReLU6(), torch.nn.Conv2d(8, 16, 1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5)).eval()
    kw = {"dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), path, input_names=["x"], output_names=["y"], opset_version=17,
                      dynamo=False, **kw)


def test_convert_then_mnnx_run_matches_onnxruntime(tmp_path, capsys):
    onnx_path, out = str(tmp_path / "cnn.onnx"), str(tmp_path / "cnn.mnnx")
    _onnx_cnn(onnx_path)
    assert main(["convert", onnx_path, out]) == 0
    assert "dynamic axes x[0]" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(load(out)(x).numpy(), want, rtol=1e-4, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run([runtime_cli(), out, str(tmp_path / "x.npy"), "--save", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = np.load(tmp_path / "y.npy")
    print(f"mnnx-run vs onnxruntime: max abs diff {np.abs(got - want).max():.2e}")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_convert_command_line_and_errors(tmp_path):
    onnx_path = str(tmp_path / "cnn.onnx")
    _onnx_cnn(onnx_path, dynamic=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "mnn_nn.deploy.cli"]
    ok = subprocess.run([*cli, "convert", onnx_path, str(tmp_path / "m.mnnx"), "--weights", "float16"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    info = subprocess.run([*cli, "info", str(tmp_path / "m.mnnx")], capture_output=True, text=True, env=env)
    assert "input  x: float32[1, 3, 16, 16]" in info.stdout and "converted_from" in info.stdout
    bad = subprocess.run([*cli, "convert", onnx_path, str(tmp_path / "n.mnnx"), "--shape", "nope=1x2"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "not inputs of the model" in bad.stderr
    missing = subprocess.run([*cli, "convert", str(tmp_path / "missing.onnx"), str(tmp_path / "n.mnnx")],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and "error" in missing.stderr
