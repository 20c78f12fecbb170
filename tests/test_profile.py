"""The lazy executor's opt-in profiler (_native.set_profiling / profile_report / profile_stats) and
``mnnx-run --profile``."""

from __future__ import annotations

import re
import subprocess
import warnings

import numpy as np
import pytest

import mnn_expr as F
from mnn_expr import _native


@pytest.fixture
def profiling():
    before = _native.profiling_enabled()
    _native.profile_reset()
    _native.set_profiling(True)
    yield
    _native.set_profiling(before)
    _native.profile_reset()


def _block(x, w):
    return F.exp(F.relu(F.conv2d(x, w, padding=1)) * 0.5) + 1.0


def test_profile_counts_steps_and_runs(profiling):
    rng = np.random.default_rng(0)
    x = F.array(rng.standard_normal((1, 32, 64, 64)).astype(np.float32))
    w = F.array(rng.standard_normal((16, 32, 3, 3)).astype(np.float32))
    for _ in range(3):
        with F.lazy_eval(True):
            _block(x, w).read()
    stats = _native.profile_stats()
    assert stats["runs"] == 3 and stats["run_seconds"] > 0
    ops = {s["op"] for s in stats["steps"]}
    # the convolution with its epilogue (relu, * 0.5), then exp and + 1 as one fused elementwise pass
    assert ops == {"conv2d+relu+multiply", "fused_elementwise"}, ops
    assert all(s["calls"] == 3 and s["seconds"] >= 0 for s in stats["steps"])
    conv = next(s for s in stats["steps"] if s["op"] == "conv2d+relu+multiply")
    assert "float32(1, 16, 64, 64)" in conv["node"] and "float32(16, 32, 3, 3)" in conv["node"]
    report = _native.profile_report(5)
    assert report.startswith("profile: 3 runs") and "by op type" in report and "conv2d+relu+multiply" in report

    _native.set_profiling(False)
    with F.lazy_eval(True):
        _block(x, w).read()
    assert _native.profile_stats()["runs"] == 3  # off: nothing recorded
    _native.profile_reset()
    assert _native.profile_stats() == {"runs": 0, "run_seconds": 0.0, "steps": []}


def test_mnnx_run_profile(tmp_path):
    from mnn_nn.deploy import runtime_cli

    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    onnx_path, model = str(tmp_path / "m.onnx"), str(tmp_path / "m.mnnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 16, 16), onnx_path, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)
    from mnn_nn.deploy.cli import main

    assert main(["convert", onnx_path, model]) == 0
    out = subprocess.run([runtime_cli(), model, "--random", "--bench", "3", "--warmup", "1", "--threads", "1",
                          "--profile", "4"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "profile: 3 runs" in out.stdout and "top 4 steps" in out.stdout
    assert re.search(r"conv2d(\[nchw16c\])?\+relu", out.stdout)  # (a channel-blocked chain: layout pass)
    one = subprocess.run([runtime_cli(), model, "--random", "--profile"], capture_output=True, text=True, timeout=60)
    assert one.returncode == 0 and "profile: 1 runs" in one.stdout


def test_profile_labels_steps_without_inputs(profiling):
    """A step with no inputs (a seeded random draw) is labelled like any other (it crashed)."""
    with F.lazy_eval(True):
        y = F.randomuniform([4, 4], seed0=3, seed1=5) * 2.0
        y.read()
    assert "random_uniform" in _native.profile_report(5)
