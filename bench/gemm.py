"""Quick GEMM benchmark: mnn_expr.matmul vs numpy (OpenBLAS), float32 square matrices.

Each thread count runs in its own subprocess (OpenBLAS reads its thread count at load),
with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from that subprocess only.  Ours and
numpy's calls are interleaved in one process and the best of many repetitions is kept,
so a noisy shared machine disturbs both alike.

    python bench/gemm.py                 # sizes 256 512 1024, threads 1 and 2
    python bench/gemm.py --sizes 1024 --threads 2 --dtype float64
    MNN_CPU_LEVEL=avx2 python bench/gemm.py   # cap our kernel level
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def worker(sizes: list[int], threads: int, dtype: str, seconds: float) -> None:
    import numpy as np

    import mnn_expr as F

    F.set_thread_number(threads)
    for n in sizes:
        a = np.random.default_rng(0).uniform(-1, 1, (n, n)).astype(dtype)
        b = np.random.default_rng(1).uniform(-1, 1, (n, n)).astype(dtype)
        A, B = F.asarray(a), F.asarray(b)
        F.matmul(A, B), a @ b  # warm up (thread pools, page faults)
        best_o = best_t = float("inf")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            F.matmul(A, B)
            t1 = time.perf_counter()
            a @ b
            t2 = time.perf_counter()
            best_o, best_t = min(best_o, t1 - t0), min(best_t, t2 - t1)
        gf = 2.0 * n ** 3 / 1e9
        print(f"{dtype} n={n:5d} threads={threads}: ours {gf / best_o:7.1f} GFLOP/s   "
              f"numpy {gf / best_t:7.1f} GFLOP/s   ratio {best_t / best_o:5.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seconds", type=float, default=3.0, help="time budget per size and thread count")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.sizes, args.worker, args.dtype, args.seconds)
        return
    try:
        print(f"load average: {os.getloadavg()}")
    except OSError:
        pass
    for t in args.threads:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["OPENBLAS_NUM_THREADS"] = str(t)
        cmd = [sys.executable, __file__, "--worker", str(t), "--dtype", args.dtype,
               "--seconds", str(args.seconds), "--sizes", *map(str, args.sizes)]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
