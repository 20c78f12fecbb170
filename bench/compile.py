#!/usr/bin/env python
"""Side-by-side benchmark of compiled programs: F.compile vs numpy, torch eager (and torch.compile).

In one process, with the same thread count for every system:

- fused elementwise and row workloads at 1e6 and 1e7 float32 elements: ``a*b + c``,
  GELU (tanh form), softmax over rows of 1000 and layer norm over rows of 1000 — numpy,
  torch eager, ours eager, ours ``F.compile``'d (and ``torch.compile`` with ``--torch-compile``;
  it compiles with a C++ toolchain and takes a while);
- the per-call overhead of a compiled program (a 1-element ``a + b``) next to an eager op;
- the LeNet-5 training step (batch 64, SGD momentum) lazy vs compiled, from bench/train.py;
- planned vs unplanned memory of the intermediates of a ResNet-18 forward graph (batch 1 and
  8, 224x224, random weights, batch norm folded away) and of the compiled LeNet step.

Prints markdown tables (ms per call; ratios ours / reference, lower is better) and the
compiler issue's fusion target: ``a*b + c`` and GELU at 1e7 at least 1.5x faster than numpy.

Usage (from the repository root, after building the native module)::

    python bench/compile.py                  # 2 threads
    python bench/compile.py --quick          # fewer samples
    python bench/compile.py --torch-compile  # also torch.compile (slow to compile)

Exit status: 0 when every result matched numpy; 1 otherwise.  Speed targets do not
change the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness as H  # noqa: E402  (imports nothing heavy: numpy must not be loaded yet)

SIZES = (10**6, 10**7)
ROW = 1000  # softmax / layer-norm row length
FUSION_TARGET = 1.5  # a*b+c and gelu at 1e7: numpy time / compiled time >= this
GELU_C = 0.7978845608028654  # sqrt(2 / pi)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (noisier)")
    p.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    p.add_argument("--torch-compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


# --------------------------------------------------------------------------- workloads

def workloads(np: Any, torch: Any, F: Any) -> dict[str, dict[str, Callable]]:
    """Per workload: the numpy, torch and mnn_expr versions of one function."""

    def np_gelu(x):
        return 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x * x * x)))

    def np_softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def np_layer_norm(x):
        m = x.mean(axis=1, keepdims=True)
        v = ((x - m) ** 2).mean(axis=1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5)

    tf = torch.nn.functional
    return {
        "a*b + c": {"args": 3, "numpy": lambda a, b, c: a * b + c, "torch": lambda a, b, c: a * b + c,
                    "ours": lambda a, b, c: a * b + c},
        "gelu (tanh)": {"args": 1, "numpy": np_gelu, "torch": lambda x: tf.gelu(x, approximate="tanh"),
                        "ours": F.gelu_tanh},
        "softmax (rows)": {"args": 1, "rows": True, "numpy": np_softmax, "torch": lambda x: torch.softmax(x, 1),
                           "ours": lambda x: F.softmax(x, axis=1)},
        "layer norm (rows)": {"args": 1, "rows": True, "numpy": np_layer_norm,
                              "torch": lambda x: tf.layer_norm(x, (x.shape[1],)),
                              "ours": lambda x: F.layer_norm(x, axis=1)},
    }


def time_workloads(np: Any, torch: Any, F: Any, args: argparse.Namespace, errors: list) -> list[dict]:
    rows = []
    repeats = 3 if args.quick else 7
    for name, w in workloads(np, torch, F).items():
        for n in SIZES:
            rng = np.random.default_rng(0)
            shape = (n // ROW, ROW) if w.get("rows") else (n,)
            arrays = [rng.uniform(-2, 2, shape).astype(np.float32) for _ in range(w["args"])]
            ts = [torch.from_numpy(a.copy()) for a in arrays]
            vs = [F.array(a) for a in arrays]
            compiled = F.compile(w["ours"])
            fns: dict[str, Callable[[], Any]] = {
                "numpy": lambda w=w, arrays=arrays: w["numpy"](*arrays),
                "torch": lambda w=w, ts=ts: w["torch"](*ts),
                "ours eager": lambda w=w, vs=vs: w["ours"](*vs).read(),
                "ours compiled": lambda compiled=compiled, vs=vs: compiled(*vs).read(),
            }
            if args.torch_compile:
                try:
                    tc = torch.compile(w["torch"])
                    tc(*ts)
                    fns["torch.compile"] = lambda tc=tc, ts=ts: tc(*ts)
                except Exception as e:  # noqa: BLE001  (report, keep going)
                    errors.append(f"torch.compile {name}: {type(e).__name__}: {str(e)[:120]}")
            ref = np.asarray(fns["numpy"](), dtype=np.float64)
            for system in ("ours eager", "ours compiled"):
                got = np.asarray(fns[system](), dtype=np.float64)
                if not np.allclose(got, ref, rtol=1e-4, atol=1e-5):
                    errors.append(f"{name} n={n} [{system}]: max abs error {np.max(np.abs(got - ref)):.3g}")
            times = H.measure_interleaved(fns, repeats=repeats, min_time=0.05)
            rows.append({"workload": name, "n": n, "seconds": times})
    return rows


def time_overhead(np: Any, F: Any, args: argparse.Namespace) -> dict[str, float]:
    a, b = F.array(np.ones(1, np.float32)), F.array(np.ones(1, np.float32))
    add = F.compile(lambda x, y: x + y)
    add(a, b)
    fns = {"eager a + b": lambda: a + b, "compiled a + b (call)": lambda: add(a, b)}
    return H.measure_interleaved(fns, repeats=3 if args.quick else 7, min_time=0.05)


def time_lenet(np: Any, torch: Any, F: Any) -> dict[str, float]:
    import train as T  # bench/train.py

    import mnn_nn as nn
    import mnn_optim as optim

    fns = T.Systems(np, torch, F, nn, optim).build("lenet")
    ok = {k: v for k, v in fns.items() if k in ("ours lazy", "ours compiled") and not isinstance(v, BaseException)}
    return H.measure_interleaved(ok, repeats=10, min_time=T.SAMPLE_TIME)


def resnet18_memory(np: Any, F: Any, batch: int) -> dict[str, Any]:
    """Runs a ResNet-18 forward graph lazily (one plan) and returns its planned memory."""
    rng = np.random.default_rng(0)

    def conv(x, cin, cout, k, stride=1):
        w = F.array((rng.standard_normal((cout, cin, k, k)) * (2.0 / (cin * k * k)) ** 0.5).astype(np.float32))
        return F.conv2d(x, w, stride=stride, padding=k // 2)

    def block(x, cin, cout, stride):
        y = F.relu(conv(F.relu(conv(x, cin, cout, 3, stride)), cout, cout, 3))
        skip = conv(x, cin, cout, 1, stride) if stride != 1 or cin != cout else x
        return F.relu(y + skip)

    with F.lazy_eval(True):
        x = F.array(rng.standard_normal((batch, 3, 224, 224)).astype(np.float32))
        y = F.max_pool2d(F.relu(conv(x, 3, 64, 7, 2)), 3, 2, 1)
        for cin, cout, stride in ((64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)):
            y = block(block(y, cin, cout, stride), cout, cout, 1)
        y = F.mean(y, axis=(2, 3))
        w = F.array(rng.standard_normal((512, 1000)).astype(np.float32) * 0.03)
        t0 = time.perf_counter()
        F.matmul(y, w).read()
        seconds = time.perf_counter() - t0
    return {**F.last_plan_memory(), "seconds": seconds}


# --------------------------------------------------------------------------- the run

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    H.prepare_process(args.threads)  # may re-exec; must precede numpy
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)

    import numpy as np

    blas = H.limit_blas_threads(args.threads)
    try:
        import torch
    except ImportError:
        print("bench/compile.py needs torch (a reference)")
        return 1
    if torch.get_num_threads() != args.threads:
        torch.set_num_threads(args.threads)
    import mnn_expr as F

    F.set_thread_number(args.threads)
    info = H.machine_info(args.threads, {"numpy": np.__version__, "torch": torch.__version__,
                                         "mnn_expr": getattr(F, "__version__", "?")}, blas, ROOT)
    H.print_header(info, "mnnpy: compiled programs vs numpy and torch")
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}\n")
    start = time.perf_counter()
    errors: list[str] = []

    rows = time_workloads(np, torch, F, args, errors)
    systems = ["numpy", "torch", *(["torch.compile"] if args.torch_compile else []), "ours eager", "ours compiled"]
    table = []
    for r in rows:
        s = r["seconds"]
        table.append([r["workload"], f"{r['n']:.0e}", *(H.fmt_time(s.get(k)) for k in systems),
                      H.fmt_ratio(s.get("ours compiled"), s.get("numpy")),
                      H.fmt_ratio(s.get("ours compiled"), s.get("torch"))])
    print("## Fused workloads (float32; time per call, min over interleaved samples)\n")
    print(H.markdown_table(["workload", "elements", *systems, "compiled/numpy", "compiled/torch"], table))

    over = time_overhead(np, F, args)
    print("\n## Per-call overhead (1 element)\n")
    print(H.markdown_table(["call", "µs"], [[k, f"{v * 1e6:.2f}"] for k, v in over.items()]))

    lenet = time_lenet(np, torch, F)
    print("\n## LeNet-5 training step (batch 64, SGD momentum; bench/train.py's systems)\n")
    print(H.markdown_table(["system", "ms per step"], [[k, f"{v * 1e3:.2f}"] for k, v in lenet.items()]))
    if "ours lazy" in lenet and "ours compiled" in lenet:
        print(f"\ncompiled / lazy: {lenet['ours compiled'] / lenet['ours lazy']:.2f}x")

    print("\n## Memory of the intermediates: planned arena vs a buffer each\n")
    mem_rows = []
    for batch in (1, 8):
        m = resnet18_memory(np, F, batch)
        mem_rows.append([f"ResNet-18 forward, batch {batch}", f"{m['planned_values']}",
                         f"{m['unplanned_bytes'] / 2**20:.1f} MiB", f"{m['arena_bytes'] / 2**20:.1f} MiB",
                         f"{m['arena_bytes'] / max(m['unplanned_bytes'], 1):.2f}"])
    import train as T  # bench/train.py

    import mnn_nn
    import mnn_optim

    step = T.Systems(np, torch, F, mnn_nn, mnn_optim).compiled_step("lenet", T.torch_model("lenet", torch).state_dict())
    step()
    step()
    m = F.last_plan_memory()
    mem_rows.append(["LeNet-5 training step (compiled), batch 64", f"{m['planned_values']}",
                     f"{m['unplanned_bytes'] / 2**20:.1f} MiB", f"{m['arena_bytes'] / 2**20:.1f} MiB",
                     f"{m['arena_bytes'] / max(m['unplanned_bytes'], 1):.2f}"])
    print(H.markdown_table(["graph", "planned values", "a buffer each", "planned arena", "arena / each"], mem_rows))
    print()
    for r in rows:
        if r["n"] == SIZES[-1] and r["workload"] in ("a*b + c", "gelu (tanh)"):
            s = r["seconds"]
            speedup = s["numpy"] / s["ours compiled"]
            verdict = "PASS" if speedup >= FUSION_TARGET else "FAIL"
            print(f"target: {r['workload']} at 1e7 compiled >= {FUSION_TARGET}x faster than numpy: "
                  f"{verdict} ({speedup:.2f}x)")
    for e in errors:
        print(f"ERROR: {e}")
    print(f"\nRan in {time.perf_counter() - start:.1f} s.")
    if args.json:
        H.write_json(args.json, {"machine": info, "workloads": rows, "overhead": over, "lenet": lenet,
                                 "errors": errors})
    return 1 if any(not e.startswith("torch.compile") for e in errors) else 0


if __name__ == "__main__":
    sys.exit(main())
