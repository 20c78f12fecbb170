#!/usr/bin/env python
"""A compiled Linear + ReLU MLP forward with the ``matmul_epilogue`` pass on and off.

The pass fuses each Linear's bias add and the ReLU after it into the matmul (applied as the
GEMM stores its register tiles), so the fused plan makes one pass over each layer's output
instead of three.  Both plans run in this process, interleaved round by round (best and
median per-call time of each round's back-to-back calls)::

    python3 bench/matmul_epilogue.py                    # batch 64, 512 -> 1024 -> 10, 2 threads
    python3 bench/matmul_epilogue.py --batch 256 --hidden 2048 --threads 1

Prints the per-call times, the ratio on / off and the fused step count of the plan.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import mnn_expr as F  # noqa: E402
import mnn_nn as nn  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--inputs", type=int, default=512)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--outputs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=0.1, help="time per round per plan")
    args = p.parse_args()
    F.set_thread_number(args.threads)
    model = nn.Sequential(nn.Linear(args.inputs, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.outputs))
    x = F.array(np.random.default_rng(0).standard_normal((args.batch, args.inputs)).astype(np.float32))

    fns, fused = {}, {}
    for on in (True, False):
        F.set_pass("matmul_epilogue", on)
        fns[on] = F.compile(lambda x: model(x), state=[model])
        fns[on](x).read()  # trace and plan with the switch as set
        fused[on] = F.last_plan_passes()["matmul_epilogue"]
    F.set_pass("matmul_epilogue", True)
    np.testing.assert_array_equal(fns[True](x).read(), fns[False](x).read())

    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for on in ((True, False) if r % 2 == 0 else (False, True)):
            F.set_pass("matmul_epilogue", on)  # (part of the plan key: each call finds its own plan)
            f = fns[on]
            f(x).read()
            n, best, t_end = 0, float("inf"), time.perf_counter() + args.seconds
            while time.perf_counter() < t_end or n < 3:
                t0 = time.perf_counter()
                f(x).read()
                best = min(best, time.perf_counter() - t0)
                n += 1
            times[on].append(best)
    F.set_pass("matmul_epilogue", True)
    flops = 2.0 * args.batch * (args.inputs * args.hidden + args.hidden * args.outputs)
    print(f"MLP forward, batch {args.batch}, {args.inputs} -> {args.hidden} -> {args.outputs}, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds (best call of each round)")
    for on in (True, False):
        ts = sorted(times[on])
        print(f"  matmul_epilogue {'on ' if on else 'off'}: best {ts[0] * 1e6:8.1f} us, "
              f"median {ts[len(ts) // 2] * 1e6:8.1f} us  ({flops / ts[0] / 1e9:.1f} GFLOP/s best), "
              f"fused steps in the plan: {fused[on]}")
    on, off = sorted(times[True]), sorted(times[False])
    print(f"  on / off: best {on[0] / off[0]:.3f}, median {on[len(on) // 2] / off[len(off) // 2]:.3f} "
          "(< 1: fused faster)")


if __name__ == "__main__":
    main()
