"""Smoke test of bench/suite.py: a --quick run of two sections prints its tables and saves a chart.

No timing assertions: the machine is shared and the run is short.  The references (torch,
onnxruntime, MNN) are optional: a missing one must show up as ``n/a``, not as a crash.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "bench", "suite.py")


def test_quick_gemm_conv_and_scaling(tmp_path):
    chart = tmp_path / "suite.png"
    out_json = tmp_path / "suite.json"
    proc = subprocess.run([sys.executable, SUITE, "--quick", "--sections", "gemm,conv,scaling", "--threads", "2",
                           "--chart", str(chart), "--json", str(out_json)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "# mnnpy benchmark suite (--quick)" in out
    assert "peak float32 estimate" in out
    assert "## GEMM" in out and "## Convolution layers" in out
    assert "## Models" not in out  # only the sections asked for
    gemm = out.split("## GEMM", 1)[1].split("## Convolution", 1)[0]
    rows = [line for line in gemm.splitlines() if line.startswith("| 64 ") or line.startswith("| 256 ")]
    assert len(rows) == 2, gemm
    assert "3x3 64->64, 56x56" in out and "dw 3x3 576ch, 14x14" in out
    scaling = out.split("## Thread scaling", 1)[1]
    assert "| GEMM 256 " in scaling and "| LeNet-5 step " in scaling and "x |" in scaling, scaling
    # every system has a number or says why not; none gave a wrong answer
    assert "WRONG" not in out
    if importlib.util.find_spec("matplotlib") is not None:
        assert chart.exists() and chart.stat().st_size > 1000
    assert out_json.exists()


def test_missing_reference_prints_na():
    """A reference that is not there (here: left out with --skip) shows n/a and why; the suite goes on."""
    proc = subprocess.run([sys.executable, SUITE, "--quick", "--sections", "overhead", "--skip", "torch,MNN",
                           "--chart", ""], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    table = out.split("## Per-op overhead", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith("| `a + b`, 1 element"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "n/a" and cells[4] == "n/a"  # torch, MNN
    # ours, numpy (a cell whose samples spread widely, on a busy machine, carries a " ~")
    assert float(cells[1].rstrip(" ~")) > 0 and float(cells[2].rstrip(" ~")) > 0
    assert "torch: n/a in" in out and "skipped (--skip)" in out


def test_parse_args():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import suite
    finally:
        sys.path.pop(0)
    a = suite.parse_args(["--quick", "--sections", "gemm,conv"])
    assert a.sections == ["gemm", "conv"] and a.threads == 2 and a.batches == [1]
    assert suite.parse_args([]).batches == [1, 8]
    assert suite.parse_args(["--skip", "MNN"]).skip == ["MNN"]
    with pytest.raises(SystemExit):
        suite.parse_args(["--skip", "tensorflow"])
    with pytest.raises(SystemExit):
        suite.parse_args(["--sections", "nope"])
