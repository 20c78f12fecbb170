#!/usr/bin/env python
"""Side-by-side op benchmark: mnn_expr (eager and lazy) vs numpy vs torch (CPU).

Runs three groups of workloads in one process, with the same thread count for
every system, and prints markdown tables of times and ratios (ours / reference:
lower is better), then the issue's speed targets with PASS/FAIL:

- overhead:   eager ``a + b`` and ``F.exp(a)`` at 1 and 100 elements (µs per op);
- throughput: add, exp, tanh, sigmoid, gelu_tanh, ``a*b+c`` and sum at 1e5 and 1e7 float32 elements,
              ours eager and ours lazy (build + read of a fresh expression);
- matmul:     256 and 1024 float32 square matrices (GFLOP/s).

Usage (from the repository root, after building the native module)::

    python bench/ops.py                 # full run, 2 threads
    python bench/ops.py --quick         # fewer repeats, shorter samples
    python bench/ops.py --threads 1 --json bench/out/ops.json
    python bench/ops.py --only overhead,matmul

Exit status: 0 when every workload ran and every system's result matched
numpy's; 1 when some could not run (e.g. an op that is not implemented yet) or
gave a wrong result.  Missed speed targets do not change the exit status.
See docs/benchmarks.md.
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

GROUPS = ("overhead", "throughput", "matmul")
SYSTEMS = ("numpy", "torch", "ours", "ours lazy")


class MissingOp(RuntimeError):
    """An mnn_expr function this benchmark needs is not in the build."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and shorter samples (noisier)")
    p.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--only", metavar="GROUPS", default=",".join(GROUPS),
                   help=f"comma-separated subset of {','.join(GROUPS)}")
    args = p.parse_args(argv)
    args.only = [g.strip() for g in args.only.split(",") if g.strip()]
    bad = [g for g in args.only if g not in GROUPS]
    if bad:
        p.error(f"--only: unknown group(s) {bad}; choose from {list(GROUPS)}")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


# --------------------------------------------------------------------------- the run

def _cell(times: dict[str, Any], system: str, fmt: Callable[[float], str]) -> str:
    """A table cell: the formatted time, why the system did not run, or n/a (not benchmarked)."""
    t = times.get(system, "n/a")
    return fmt(t) if isinstance(t, float) else t


def _ratio(times: dict[str, Any], ours: str, ref: str) -> str:
    a, b = times.get(ours), times.get(ref)
    return H.fmt_ratio(a, b) if isinstance(a, float) and isinstance(b, float) else "-"


class Bench:
    """Holds the imported systems, settings and results of one run."""

    def __init__(self, args: argparse.Namespace, np: Any, torch: Any, F: Any) -> None:
        self.args, self.np, self.torch, self.F = args, np, torch, F
        self.repeats = 5 if args.quick else 7  # at least this many samples per system
        self.min_time = 0.002  # seconds per sample, at least (one call when a call takes longer)
        self.budget = 0.15 if args.quick else 0.5  # seconds of samples per system and workload
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []

    # -- helpers -------------------------------------------------------------
    def op(self, name: str) -> Callable[..., Any]:
        """``F.<name>``, or MissingOp with a message saying so."""
        fn = getattr(self.F, name, None)
        if fn is None:
            raise MissingOp(f"F.{name} is not in this mnn_expr build (its op family is not implemented or "
                            f"not merged yet)")
        return fn

    def run_case(self, group: str, op: str, n: int, fns: dict[str, Any],
                 reference: Any, rtol: float, atol: float) -> dict[str, Any]:
        """Checks each system's result against ``reference``, then times the good ones interleaved.

        ``fns`` maps a system name to a zero-argument callable, or to an exception
        raised while setting it up.  Returns, per system, seconds per call (a float)
        or why it did not run ("missing", "WRONG", "error").
        """
        np = self.np
        ok: dict[str, Callable[[], Any]] = {}
        notes: dict[str, str] = {}
        for system, fn in fns.items():
            try:
                if isinstance(fn, BaseException):
                    raise fn
                got = fn()
                got = got.numpy() if hasattr(got, "detach") else np.asarray(got)
                if got.shape != np.shape(reference):
                    raise AssertionError(f"shape {got.shape}, expected {np.shape(reference)}")
                if not np.allclose(got.astype(np.float64), reference, rtol=rtol, atol=atol):
                    err = np.max(np.abs(got.astype(np.float64) - reference))
                    raise AssertionError(f"wrong result: max abs error {err:.3g} (rtol {rtol}, atol {atol})")
                ok[system] = fn
            except MissingOp as e:
                notes[system] = "missing"
                self.errors.append(f"{group} {op} n={n} [{system}]: {e}")
            except AssertionError as e:
                notes[system] = "WRONG"
                self.errors.append(f"{group} {op} n={n} [{system}]: {e}")
            except Exception as e:  # noqa: BLE001  (report any failure of a system, keep benchmarking)
                notes[system] = "error"
                self.errors.append(f"{group} {op} n={n} [{system}]: {type(e).__name__}: {e}")
        times = (H.measure_interleaved(ok, repeats=self.repeats, min_time=self.min_time, budget=self.budget)
                 if ok else {})
        for system in fns:
            self.results.append({"group": group, "op": op, "n": n, "system": system,
                                 "seconds": times.get(system), "note": notes.get(system, "")})
        return {system: times[system] if system in times else notes[system] for system in fns}

    def lazy(self, build: Callable[[], Any]) -> Callable[[], Any]:
        """Build + read of a fresh lazy expression: the user-visible cost of one lazy evaluation."""
        F = self.F

        def run() -> Any:
            with F.lazy_eval(True):
                return build().read()

        return run

    # -- systems for elementwise-style workloads -----------------------------
    def systems_for(self, arrays: list[Any], np_fn: Callable[..., Any], torch_fn: Callable[..., Any],
                    ours_fn: Callable[..., Any], lazy: bool) -> dict[str, Any]:
        fns: dict[str, Any] = {"numpy": lambda: np_fn(*arrays)}
        if self.torch is not None:
            ts = [self.torch.from_numpy(a) for a in arrays]
            fns["torch"] = lambda: torch_fn(*ts)
        try:
            vs = [self.F.array(a) for a in arrays]
            fns["ours"] = lambda: ours_fn(*vs)
            if lazy:
                fns["ours lazy"] = self.lazy(lambda: ours_fn(*vs))
        except Exception as e:  # noqa: BLE001
            fns["ours"] = e
        return fns

    # -- groups ---------------------------------------------------------------
    def overhead(self) -> None:
        np = self.np
        rng = np.random.default_rng(0)
        cases = [
            ("a + b", 2, lambda a, b: a + b, lambda a, b: a + b, lambda a, b: a + b),
            ("exp(a)", 1, np.exp, getattr(self.torch, "exp", None), lambda a: self.op("exp")(a)),
        ]
        rows = []
        us = lambda t: f"{t * 1e6:.3f}"  # noqa: E731
        for name, arity, np_fn, torch_fn, ours_fn in cases:
            for n in (1, 100):
                arrays = [rng.random(n, dtype=np.float32) for _ in range(arity)]
                fns = self.systems_for(arrays, np_fn, torch_fn, ours_fn, lazy=True)
                ref = np_fn(*[a.astype(np.float64) for a in arrays])
                t = self.run_case("overhead", name, n, fns, ref, rtol=1e-5, atol=1e-6)
                rows.append([f"`{name}`", n, _cell(t, "numpy", us), _cell(t, "torch", us),
                             _cell(t, "ours", us), _cell(t, "ours lazy", us),
                             _ratio(t, "ours", "numpy"), _ratio(t, "ours", "torch")])
        print("## Per-op overhead (µs per call, eager; lower is better)\n")
        headers = ["op", "n", "numpy", "torch", "ours", "ours lazy", "ours/numpy", "ours/torch"]
        print(H.markdown_table(headers, rows))
        print("\n`ours lazy` = build the one-op expression in `with F.lazy_eval(True)` and read it "
              "(plan-cache hit).\n")

    def throughput(self) -> None:
        np = self.np
        rng = np.random.default_rng(1)

        def fma(a: Any, b: Any, c: Any) -> Any:
            return a * b + c

        cases = [
            ("a + b", 2, lambda a, b: a + b, lambda a, b: a + b, lambda a, b: a + b, 1e-5),
            ("exp(a)", 1, np.exp, getattr(self.torch, "exp", None), lambda a: self.op("exp")(a), 1e-5),
            ("tanh(a)", 1, np.tanh, getattr(self.torch, "tanh", None), lambda a: self.op("tanh")(a), 1e-5),
            ("sigmoid(a)", 1, lambda a: 1 / (1 + np.exp(-a)), getattr(self.torch, "sigmoid", None),
             lambda a: self.op("sigmoid")(a), 1e-5),
            ("gelu_tanh(a)", 1, lambda a: 0.5 * a * (1 + np.tanh(0.7978845608028654 * (a + 0.044715 * a**3))),
             (lambda a: self.torch.nn.functional.gelu(a, approximate="tanh")) if self.torch is not None else None,
             lambda a: self.op("gelu_tanh")(a), 1e-5),
            ("a * b + c", 3, fma, fma, fma, 1e-5),
            ("sum(a)", 1, np.sum, getattr(self.torch, "sum", None), lambda a: self.op("sum")(a), 1e-3),
        ]
        rows = []
        for name, arity, np_fn, torch_fn, ours_fn, rtol in cases:
            for n in (100_000, 10_000_000):
                arrays = [rng.random(n, dtype=np.float32) for _ in range(arity)]
                fns = self.systems_for(arrays, np_fn, torch_fn, ours_fn, lazy=True)
                ref = np_fn(*[a.astype(np.float64) for a in arrays])
                t = self.run_case("throughput", name, n, fns, ref, rtol=rtol, atol=1e-6)
                rows.append([f"`{name}`", f"{n:.0e}", *(_cell(t, s, H.fmt_time) for s in SYSTEMS),
                             _ratio(t, "ours", "numpy"), _ratio(t, "ours lazy", "numpy"),
                             _ratio(t, "ours", "torch"),
                             _ratio(t, "ours lazy", "torch")])
        print("## Throughput (time per call, float32; lower is better)\n")
        print(H.markdown_table(["op", "n", "numpy", "torch", "ours", "ours lazy", "ours/numpy", "lazy/numpy",
                                "ours/torch", "lazy/torch"], rows))
        print("\n`ours lazy` = build a fresh expression in `with F.lazy_eval(True)` and read it: "
              "one native call per read.\n")

    def matmul(self) -> None:
        np = self.np
        rng = np.random.default_rng(2)
        rows = []
        for n in (256, 1024):
            a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
            fns = self.systems_for([a, b], np.matmul, getattr(self.torch, "matmul", None),
                                   lambda x, y: self.op("matmul")(x, y), lazy=False)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            t = self.run_case("matmul", "matmul", n, fns, ref, rtol=1e-4, atol=1e-3)
            flops = 2.0 * n ** 3
            gf = lambda s, flops=flops: f"{flops / s / 1e9:.1f}"  # noqa: E731
            rows.append([f"{n}x{n}", *(_cell(t, s, H.fmt_time) for s in ("numpy", "torch", "ours")),
                         *(_cell(t, s, gf) for s in ("numpy", "torch", "ours")),
                         _ratio(t, "ours", "numpy"), _ratio(t, "ours", "torch")])
        print("## Matmul (float32, square; time lower is better, GFLOP/s higher is better)\n")
        headers = ["size", "numpy", "torch", "ours", "numpy GFLOP/s", "torch GFLOP/s", "ours GFLOP/s",
                   "ours/numpy", "ours/torch"]
        print(H.markdown_table(headers, rows))
        print()

    # -- targets --------------------------------------------------------------
    def seconds(self, group: str, op: str, n: int, system: str) -> float | None:
        for r in self.results:
            if (r["group"], r["op"], r["n"], r["system"]) == (group, op, n, system):
                return r["seconds"]
        return None

    def targets(self) -> list[dict[str, Any]]:
        """The issue's speed targets, each with the measured ratio and PASS/FAIL/NOT RUN."""
        specs = [
            ("eager `a + b`, 1 element: ours <= 0.7x torch", "overhead", ("overhead", "a + b", 1, "ours"),
             ("overhead", "a + b", 1, "torch"), 0.7),
            ("lazy `a * b + c`, 1e7 elements: ours <= 1.0x numpy", "throughput",
             ("throughput", "a * b + c", 10_000_000, "ours lazy"),
             ("throughput", "a * b + c", 10_000_000, "numpy"), 1.0),
            ("matmul 1024: ours >= 50% of numpy's GFLOP/s (time <= 2.0x)", "matmul",
             ("matmul", "matmul", 1024, "ours"), ("matmul", "matmul", 1024, "numpy"), 2.0),
        ]
        out = []
        for text, group, ours_key, ref_key, limit in specs:
            if group not in self.args.only:
                continue
            ours, ref = self.seconds(*ours_key), self.seconds(*ref_key)
            if ours is None or ref is None:
                missing = ours_key[3] if ours is None else ref_key[3]
                out.append({"target": text, "ratio": None, "limit": limit,
                            "result": f"NOT RUN ({missing} did not run)"})
                continue
            ratio = ours / ref
            out.append({"target": text, "ratio": ratio, "limit": limit,
                        "result": "PASS" if ratio <= limit else "FAIL"})
        return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    H.prepare_process(args.threads)  # may re-exec; must precede numpy
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # run the checkout's mnn_expr

    import numpy as np

    blas = H.limit_blas_threads(args.threads)
    try:
        import torch

        # Only when it differs: observed with torch 2.13, an explicit set_num_threads() (even to
        # the default) makes exp on 100 elements wake a second thread on every call -- ~20 ms per
        # call on a busy machine instead of ~1.3 µs.  See docs/benchmarks.md.
        if torch.get_num_threads() != args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    import mnn_expr as F

    F.set_thread_number(args.threads)

    versions = {"numpy": np.__version__,
                "torch": torch.__version__ if torch is not None else "not importable",
                "mnn_expr": f"{F.__version__} ({os.path.dirname(F.__file__)})"}
    info = H.machine_info(args.threads, versions, blas, repo=ROOT)
    H.print_header(info, "mnn_expr vs numpy vs torch: ops" + (" (--quick)" if args.quick else ""))
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}\n")
    if torch is None:
        print("> torch is not importable: its columns and torch-relative targets are left out.\n")

    bench = Bench(args, np, torch, F)
    start = time.perf_counter()
    for group in GROUPS:
        if group in args.only:
            getattr(bench, group)()
            sys.stdout.flush()

    targets = bench.targets()
    print("## Targets\n")
    rows = [[t["target"], "-" if t["ratio"] is None else f"{t['ratio']:.2f}x", f"{t['limit']:.2f}x",
             t["result"]] for t in targets]
    print(H.markdown_table(["target", "ours/reference", "limit", "result"], rows))
    print()
    load_end = H.load_average()
    print(f"Ran in {time.perf_counter() - start:.1f} s; load average (1 min) at the end: "
          f"{'?' if load_end is None else f'{load_end:.2f}'}.")
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}")
    if bench.errors:
        print("\n## Errors (these workloads did not run or gave wrong results)\n")
        for e in bench.errors:
            print(f"- {e}")
    if args.json:
        info["load_1min_end"] = load_end
        H.write_json(args.json, {"machine": info, "args": {"quick": args.quick, "threads": args.threads,
                                                           "only": args.only, "repeats": bench.repeats},
                                 "results": bench.results, "targets": targets, "errors": bench.errors})
        print(f"\nwrote {args.json}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
