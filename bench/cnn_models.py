"""CNN latency, side by side: ResNet-18 and MobileNetV2 (batch 1, 224x224) in onnxruntime and in mnnx-run.

The torch models of ``tests/test_onnx_import.py`` (random weights, BatchNorm with random statistics)
are exported to ONNX (the legacy exporter, opset 17), converted with ``mnnpy convert`` and run by
``build/dev/mnnx-run --bench``; onnxruntime runs the same ONNX file in this process with the same
thread count.  Rounds alternate between the two (the machine is shared), and the report is the
median over rounds of each round's median.

    python3 bench/cnn_models.py                       # both models, 2 threads, 5 rounds
    python3 bench/cnn_models.py --models mobilenetv2 --rounds 3 --profile

``--profile`` adds mnnx-run's per-op profile (``mnnx-run --profile``) of one more run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,mobilenetv2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=20, help="timed runs per round")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--mnnx-run", default=os.path.join(ROOT, "build", "dev", "mnnx-run"))
    p.add_argument("--workdir", default="/tmp/mnnpy_cnn_bench")
    p.add_argument("--reconvert", action="store_true", help="convert again even when the .mnnx exists")
    p.add_argument("--profile", action="store_true", help="print mnnx-run's per-op profile too")
    return p.parse_args()


def export(name: str, size: int, workdir: str) -> tuple[str, str]:
    """Exports the torch model `name` once (cached in workdir); returns (onnx path, input .npy path)."""
    import numpy as np

    onnx_path = os.path.join(workdir, f"{name}.onnx")
    x_path = os.path.join(workdir, f"{name}_x{size}.npy")
    if os.path.exists(onnx_path) and os.path.exists(x_path):
        return onnx_path, x_path
    import warnings

    import torch

    sys.path.insert(0, ROOT)
    from tests.test_onnx_import import _torch_models

    _, specs = _torch_models()
    torch.manual_seed(0)
    net = specs[name][0]()
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), onnx_path, input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False)
    np.save(x_path, x.numpy())
    return onnx_path, x_path


def convert(onnx_path: str, force: bool) -> str:
    out = onnx_path[:-5] + ".mnnx"
    if force or not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(onnx_path):
        subprocess.run([sys.executable, "-m", "mnn_nn.deploy.cli", "convert", onnx_path, out], check=True, cwd=ROOT)
    return out


def ort_median_ms(onnx_path: str, x_path: str, threads: int, iters: int) -> float:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    x = np.load(x_path)
    for _ in range(5):
        s.run(None, {"x": x})
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        s.run(None, {"x": x})
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def ours_median_ms(exe: str, model: str, x_path: str, threads: int, iters: int) -> float:
    out = subprocess.run([exe, model, x_path, "--bench", str(iters), "--threads", str(threads)], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"median ([0-9.]+) ms", out)
    if not m:
        raise RuntimeError(f"unexpected mnnx-run output: {out[-300:]}")
    return float(m.group(1))


def main() -> None:
    args = parse_args()
    import numpy as np

    os.makedirs(args.workdir, exist_ok=True)
    load = os.getloadavg()[0]
    print(f"threads {args.threads}, {args.rounds} rounds x {args.iters} runs, load average {load:.2f}")
    for name in args.models.split(","):
        onnx_path, x_path = export(name, args.size, args.workdir)
        model = convert(onnx_path, args.reconvert)
        ort_ms, ours_ms = [], []
        for _ in range(args.rounds):
            ort_ms.append(ort_median_ms(onnx_path, x_path, args.threads, args.iters))
            ours_ms.append(ours_median_ms(args.mnnx_run, model, x_path, args.threads, args.iters))
        a, b = float(np.median(ort_ms)), float(np.median(ours_ms))
        print(f"{name:12s} onnxruntime {a:7.2f} ms   mnnx-run {b:7.2f} ms   ratio {b / a:5.2f}x   "
              f"(rounds: ort {', '.join(f'{v:.2f}' for v in ort_ms)}; ours {', '.join(f'{v:.2f}' for v in ours_ms)})")
        if args.profile:
            out = subprocess.run([args.mnnx_run, model, x_path, "--bench", str(args.iters), "--threads",
                                  str(args.threads), "--profile"], capture_output=True, text=True, check=True).stdout
            print(out[out.find("profile"):] if "profile" in out else out)


if __name__ == "__main__":
    main()
