"""The AArch64 build, run under qemu-user: the cross-built ``mnnx-run`` computes what this
(x86-64) build computes on exported models, with its NEON kernels and with the portable ones
(``MNN_CPU_LEVEL=generic``).

``.ci/run`` installs Debian's ``g++-aarch64-linux-gnu`` and ``qemu-user`` and cross-builds the CLI
(``cmake -S . -B build/arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake``; or point
``MNN_ARM_MNNX_RUN`` at one).  Elsewhere the test is skipped when there is no such build or no
qemu; under CI (``CI=true``) a missing one is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import mnn_expr as F
import mnn_nn as nn
from mnn_nn.deploy import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARM_CLI = os.environ.get("MNN_ARM_MNNX_RUN") or os.path.join(ROOT, "build", "arm", "mnnx-run")
QEMU = shutil.which("qemu-aarch64")
SYSROOT = "/usr/aarch64-linux-gnu"


def _require_arm() -> None:
    missing = [what for what, ok in (("the cross-built mnnx-run at " + ARM_CLI, os.path.exists(ARM_CLI)),
                                     ("qemu-aarch64", QEMU is not None)) if not ok]
    if missing:
        msg = "no AArch64 run: missing " + " and ".join(missing) + " (see this file's docstring)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _run_arm(args: list, level: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, QEMU_LD_PREFIX=SYSROOT)
    env.pop("MNN_CPU_LEVEL", None)
    if level:
        env["MNN_CPU_LEVEL"] = level
    out = subprocess.run([QEMU, ARM_CLI, *args], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _conv_net() -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
                      nn.Conv2d(12, 12, 3, stride=2, groups=12), nn.ReLU6(), nn.Conv2d(12, 20, 1), nn.ReLU(),
                      nn.AvgPool2d(2), nn.Flatten(), nn.Linear(20 * 3 * 3, 10), nn.Softmax(1))
    return m.eval()


def _mlp() -> nn.Module:  # sizes that leave partial register tiles everywhere
    return nn.Sequential(nn.Linear(37, 29), nn.GELU(), nn.Linear(29, 13), nn.LayerNorm(13)).eval()


def _attention(q: F.Var, k: F.Var) -> F.Var:
    return F.matmul(F.softmax(F.matmul(q, F.swapaxes(k, -1, -2)) / 3.0, axis=-1), k)


CASES = {
    "conv-net": (_conv_net, [(2, 3, 14, 14)], "float32", 1e-5),
    "mlp": (_mlp, [(11, 37)], "float32", 1e-5),
    "attention": (lambda: _attention, [(2, 9, 16), (2, 21, 16)], "float32", 1e-5),
    "matmul-float64": (lambda: F.matmul, [(19, 23), (23, 17)], "float64", 1e-12),
}


@pytest.mark.parametrize("case", list(CASES))
def test_aarch64_build_matches_this_build(case: str, tmp_path) -> None:
    _require_arm()
    make, shapes, dtype, rtol = CASES[case]
    model = make()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    path = str(tmp_path / "model.mnnx")
    export(model, [F.array(x) for x in xs], path)
    want = np.asarray(model(*[F.array(x) for x in xs]).numpy())
    npys = []
    for i, x in enumerate(xs):
        npys.append(str(tmp_path / f"x{i}.npy"))
        np.save(npys[-1], x)
    for level in ("", "generic"):  # the hardware's best (neon), then the portable kernels
        out_dir = tmp_path / (level or "best")
        out_dir.mkdir()
        _run_arm([path, *npys, "--save", str(out_dir)], level)
        (got_path,) = list(out_dir.glob("*.npy"))
        np.testing.assert_allclose(np.load(got_path), want, rtol=rtol, atol=rtol, err_msg=level or "neon")


def test_aarch64_build_reports_its_kernel_level(tmp_path) -> None:
    _require_arm()
    path = str(tmp_path / "m.mnnx")
    export(lambda x: x * 2.0, [F.ones((2,))], path)
    assert "kernels: neon" in _run_arm([path, "--info"]).stdout
    assert "kernels: generic" in _run_arm([path, "--info"], "generic").stdout
