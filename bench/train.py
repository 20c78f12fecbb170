#!/usr/bin/env python
"""Side-by-side training-step benchmark: mnn_expr + mnn_nn + mnn_optim (eager, lazy, compiled) vs torch (CPU).

Times one training step (forward, cross-entropy loss, gradients, SGD with momentum
0.9) of two models, with the same thread count for every system, and prints a
markdown table of ms per step and ratios ours / torch (lower is better), then the
issue's speed target with PASS/FAIL:

- LeNet-5 on 1x28x28 inputs, batch 64: conv(1,6,5)-relu-maxpool2-conv(6,16,5)-relu-
  maxpool2-flatten-linear(256,120)-relu-linear(120,84)-relu-linear(84,10);
- MLP 784-512-512-10 (relu), batch 128.

Systems (each starts from the same initial weights, copied from torch through
``state_dict``, and trains on the same random batch, fixed seed):

- ``torch``: ``zero_grad``; forward; ``loss.backward()``; ``optimizer.step()``;
- ``ours eager``: forward and loss run eagerly; ``F.grad(loss, params,
  create_graph=False)`` runs the backward kernels as it goes; ``opt.apply(grads)``
  runs the fused update (one native call);
- ``ours lazy``: forward, loss and gradient graph are recorded inside
  ``with F.lazy_eval(True)``; ``F.evaluate(loss, *grads)`` computes them in one
  native call (plan cache hit after the first step); ``opt.apply(grads)`` computes
  the updates in a second call;
- ``ours compiled``: the whole step (forward, loss, gradients, optimiser update) is
  ``F.compile``'d with ``state=[model, optimizer]``: traced once, then each step writes
  the batch and runs the program in one native call.

Before timing, the first steps of every system are checked against torch's losses
(and the parameters after them), so a wrong gradient cannot pass unnoticed.
``--profile`` adds a breakdown of our step into sections (Python graph building,
native evaluation, optimiser) and cProfile's top functions.

Usage (from the repository root, after building the native module)::

    python bench/train.py                  # full run, 2 threads
    python bench/train.py --quick          # fewer samples (noisier)
    python bench/train.py --threads 1 --steps 30 --json bench/out/train.json
    python bench/train.py --profile        # also where our step spends its time

Exit status: 0 when every system ran and matched torch; 1 otherwise.  A missed
speed target does not change the exit status.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness as H  # noqa: E402  (imports nothing heavy: numpy must not be loaded yet)

MODELS = ("lenet", "mlp")
SYSTEMS = ("torch", "ours eager", "ours lazy", "ours compiled")
BATCH = {"lenet": 64, "mlp": 128}
LR, MOMENTUM = 0.01, 0.9
CHECK_STEPS = 3  # steps compared with torch before timing
TARGET_LIMIT = 1.5  # lazy LeNet step <= 1.5x torch's
SAMPLE_TIME = 0.03  # seconds of consecutive steps per timed sample


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer timed steps (noisier)")
    p.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per system and model, at least (default 30, 10 with --quick)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--only", metavar="MODELS", default=",".join(MODELS),
                   help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--profile", action="store_true",
                   help="also break our step into sections and print cProfile's top functions")
    args = p.parse_args(argv)
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    bad = [m for m in args.only if m not in MODELS]
    if bad:
        p.error(f"--only: unknown model(s) {bad}; choose from {list(MODELS)}")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.steps is None:
        args.steps = 10 if args.quick else 30
    if args.steps < 1:
        p.error("--steps must be >= 1")
    return args


# --------------------------------------------------------------------------- models

def torch_model(name: str, torch: Any) -> Any:
    nn = torch.nn
    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def our_model(name: str, nn: Any) -> Any:
    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def make_batch(name: str, np: Any) -> tuple[Any, Any]:
    rng = np.random.default_rng(0 if name == "lenet" else 1)
    n = BATCH[name]
    shape = (n, 1, 28, 28) if name == "lenet" else (n, 784)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    return x, y


class Systems:
    """Builds, per model, the three systems' step functions from one torch initialisation."""

    def __init__(self, np: Any, torch: Any, F: Any, nn: Any, optim: Any) -> None:
        self.np, self.torch, self.F, self.nn, self.optim = np, torch, F, nn, optim

    def torch_step(self, name: str, state: dict) -> Callable[[], Any]:
        torch = self.torch
        model = torch_model(name, torch)
        model.load_state_dict(state)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = (torch.from_numpy(a) for a in make_batch(name, self.np))
        ce = torch.nn.functional.cross_entropy

        def step() -> Any:
            opt.zero_grad()
            loss = ce(model(x), y)
            loss.backward()
            opt.step()
            return loss

        step.model = model  # type: ignore[attr-defined]
        return step

    def ours(self, name: str, state: dict) -> tuple[Any, Any, Any, Any, Any]:
        F, np = self.F, self.np
        model = our_model(name, self.nn)
        model.load_state_dict({k: v.detach().numpy() for k, v in state.items()})
        params = list(model.parameters())
        for p in params:
            p.requires_grad = True
        opt = self.optim.SGD(params, lr=LR, momentum=MOMENTUM)
        xa, ya = make_batch(name, np)
        return model, params, opt, F.array(xa), F.array(ya)

    def eager_step(self, name: str, state: dict) -> Callable[[], Any]:
        F = self.F
        ce = self.nn.loss.cross_entropy
        model, params, opt, x, y = self.ours(name, state)

        def step() -> Any:
            loss = ce(model(x), y)
            grads = F.grad(loss, params, create_graph=False)
            opt.apply(grads)
            return loss

        step.model, step.parts = model, (model, params, opt, x, y)  # type: ignore[attr-defined]
        return step

    def lazy_step(self, name: str, state: dict) -> Callable[[], Any]:
        F = self.F
        ce = self.nn.loss.cross_entropy
        model, params, opt, x, y = self.ours(name, state)

        def step() -> Any:
            with F.lazy_eval(True):
                loss = ce(model(x), y)
                grads = F.grad(loss, params, create_graph=False)
                F.evaluate(loss, *grads)  # forward + backward: one native call
            opt.apply(grads)  # the fused updates: a second call
            return loss

        step.model, step.parts = model, (model, params, opt, x, y)  # type: ignore[attr-defined]
        return step

    def compiled_step(self, name: str, state: dict) -> Callable[[], Any]:
        F = self.F
        ce = self.nn.loss.cross_entropy
        model, params, opt, x, y = self.ours(name, state)

        def train_step(xb: Any, yb: Any) -> Any:
            loss = ce(model(xb), yb)
            opt.apply(F.grad(loss, params, create_graph=False))
            return loss

        compiled = F.compile(train_step, state=[model, opt])  # traced once; then one native call per step

        def step() -> Any:
            return compiled(x, y)

        step.model, step.parts = model, (model, params, opt, x, y)  # type: ignore[attr-defined]
        return step

    def build(self, name: str) -> dict[str, Any]:
        torch = self.torch
        torch.manual_seed(0)
        state = torch_model(name, torch).state_dict()
        fns: dict[str, Any] = {"torch": self.torch_step(name, state)}
        for system, make in (("ours eager", self.eager_step), ("ours lazy", self.lazy_step),
                             ("ours compiled", self.compiled_step)):
            try:
                fns[system] = make(name, state)
            except Exception as e:  # noqa: BLE001  (report it, keep benchmarking the others)
                fns[system] = e
        return fns


def loss_value(loss: Any) -> float:
    return float(loss.item()) if hasattr(loss, "item") else float(loss)


def check(np: Any, fns: dict[str, Any], errors: list[str], name: str) -> dict[str, list[float]]:
    """Runs CHECK_STEPS steps of every system; ours must match torch's losses and final parameters."""
    losses: dict[str, list[float]] = {}
    for system, fn in fns.items():
        if isinstance(fn, BaseException):
            continue
        try:
            losses[system] = [loss_value(fn()) for _ in range(CHECK_STEPS)]
        except Exception as e:  # noqa: BLE001
            fns[system] = e
            errors.append(f"{name} [{system}]: {type(e).__name__}: {e}")
    ref = losses.get("torch")
    ref_params = [p.detach().numpy() for p in fns["torch"].model.parameters()]
    for system in ("ours eager", "ours lazy", "ours compiled"):
        fn = fns.get(system)
        if isinstance(fn, BaseException) or system not in losses:
            if isinstance(fn, BaseException) and not any(e.startswith(f"{name} [{system}]") for e in errors):
                errors.append(f"{name} [{system}]: {type(fn).__name__}: {fn}")
            continue
        got = losses[system]
        problems = []
        if not np.allclose(got, ref, rtol=1e-4, atol=1e-5):
            problems.append(f"losses {got} != torch's {ref}")
        for i, (p, q) in enumerate(zip(fn.model.parameters(), ref_params)):
            a = np.asarray(p.read(), dtype=np.float64)
            if a.shape != q.shape or not np.allclose(a, q, rtol=1e-3, atol=1e-5):
                err = np.max(np.abs(a - q)) if a.shape == q.shape else f"shape {a.shape} vs {q.shape}"
                problems.append(f"parameter {i} after {CHECK_STEPS} steps differs from torch's (max abs err {err})")
                break
        if problems:
            fns[system] = AssertionError("; ".join(problems))
            errors.append(f"{name} [{system}]: WRONG: {'; '.join(problems)}")
    return losses


# --------------------------------------------------------------------------- profiling

def profile_sections(F: Any, nn: Any, fns: dict[str, Any], steps: int) -> dict[str, dict[str, float]]:
    """Median ms per section of our eager and lazy steps (same models as timed, continuing training)."""
    ce = nn.loss.cross_entropy
    out: dict[str, dict[str, float]] = {}
    for system in ("ours eager", "ours lazy"):
        fn = fns.get(system)
        if fn is None or isinstance(fn, BaseException):
            continue
        model, params, opt, x, y = fn.parts
        samples: dict[str, list[float]] = {}
        lazy = system == "ours lazy"
        for _ in range(steps):
            t = [time.perf_counter()]
            if lazy:
                with F.lazy_eval(True):
                    logits = model(x)
                    t.append(time.perf_counter())
                    loss = ce(logits, y)
                    t.append(time.perf_counter())
                    grads = F.grad(loss, params, create_graph=False)
                    t.append(time.perf_counter())
                    F.evaluate(loss, *grads)
                    t.append(time.perf_counter())
                names = ("forward (record)", "loss (record)", "grad graph (record)", "evaluate (native)")
            else:
                logits = model(x)
                t.append(time.perf_counter())
                loss = ce(logits, y)
                t.append(time.perf_counter())
                grads = F.grad(loss, params, create_graph=False)
                t.append(time.perf_counter())
                names = ("forward", "loss", "grad (backward)")
            opt.apply(grads)
            t.append(time.perf_counter())
            names = (*names, "optimizer apply")
            for k, a, b in zip(names, t, t[1:]):
                samples.setdefault(k, []).append((b - a) * 1e3)
        out[system] = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    return out


def op_profile(fn: Callable[[], Any], steps: int, top: int = 15) -> list[dict[str, Any]]:
    """Eager steps with every native op call timed: ms per step by (op, input shapes), top first.

    Wraps ``_native.apply/binary/unary/where/evaluate`` (what mnn_expr's functions, the
    gradient rules and the optimiser call); in eager mode each call runs its kernel before
    returning, so its time is the kernel's plus the binding's overhead.  Per key, the time
    reported is the minimum over the steps of that key's total in a step (the least
    disturbed by other processes); the first row is the median whole step.
    """
    from mnn_expr import _native

    names = ("apply", "binary", "unary", "where", "evaluate")
    saved = {n: getattr(_native, n) for n in names}
    cur: dict[tuple, list[float]] = {}

    def wrap(kind: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = real(*a, **k)
            dt = time.perf_counter() - t0
            if kind == "evaluate":
                key = ("evaluate (optimizer)", "")
            else:
                args = a[1] if kind == "apply" else a[1:] if kind != "where" else a
                shapes = [tuple(v.shape) for v in args if hasattr(v, "shape")]
                op = a[0] if kind == "apply" else "where" if kind == "where" else f"{kind} {a[0]}"
                key = (op, " ".join(str(list(sh)) for sh in shapes[:3]))
            rec = cur.setdefault(key, [0.0, 0])
            rec[0] += dt
            rec[1] += 1
            return out
        return timed

    per_step: list[dict[tuple, list[float]]] = []
    totals = []
    for n in names:
        setattr(_native, n, wrap(n, saved[n]))
    try:
        for _ in range(steps):
            cur.clear()
            t0 = time.perf_counter()
            fn()
            totals.append(time.perf_counter() - t0)
            per_step.append({k: list(v) for k, v in cur.items()})
    finally:
        for n, f in saved.items():
            setattr(_native, n, f)
    keys = {k for d in per_step for k in d}
    rows = [{"op": k[0], "shapes": k[1], "ms_per_step": min(d.get(k, [0.0])[0] for d in per_step) * 1e3,
             "calls_per_step": per_step[-1].get(k, [0, 0])[1]} for k in keys]
    rows.sort(key=lambda r: -r["ms_per_step"])
    covered = sum(r["ms_per_step"] for r in rows)
    return [{"op": "(step, median)", "shapes": f"sum of the per-op minima: {covered:.2f} ms",
             "ms_per_step": sorted(totals)[len(totals) // 2] * 1e3,
             "calls_per_step": sum(r["calls_per_step"] for r in rows)}, *rows[:top]]


def cprofile_top(fn: Callable[[], Any], steps: int, top: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:start + top + 1])


# --------------------------------------------------------------------------- the run

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    H.prepare_process(args.threads)  # may re-exec; must precede numpy
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # run the checkout's packages

    import numpy as np

    blas = H.limit_blas_threads(args.threads)
    try:
        import torch
    except ImportError:
        print("bench/train.py needs torch (the reference and the source of the initial weights)")
        return 1
    # Only when it differs: an explicit set_num_threads() (even to the default) can make small
    # ops wake a second thread on every call (see bench/ops.py).
    if torch.get_num_threads() != args.threads:
        torch.set_num_threads(args.threads)
    import mnn_expr as F
    import mnn_nn as nn
    import mnn_optim as optim

    F.set_thread_number(args.threads)
    versions = {"numpy": np.__version__, "torch": torch.__version__,
                "mnn_expr": f"{F.__version__} ({os.path.dirname(F.__file__)})"}
    info = H.machine_info(args.threads, versions, blas, repo=ROOT)
    H.print_header(info, "mnnpy vs torch: training step" + (" (--quick)" if args.quick else ""))
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}\n")

    systems = Systems(np, torch, F, nn, optim)
    errors: list[str] = []
    results: list[dict[str, Any]] = []
    rows = []
    checked: dict[str, dict[str, list[float]]] = {}
    profiles: dict[str, Any] = {}
    all_fns: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for name in args.only:
        fns = systems.build(name)
        checked[name] = check(np, fns, errors, name)
        ok = {s: f for s, f in fns.items() if not isinstance(f, BaseException)}
        # ``steps`` rounds, each timing every system in turn; a sample is a run of consecutive steps
        # lasting >= SAMPLE_TIME (training is a loop: one step alone, right after the settling sleep,
        # would time a cold CPU and cold caches for every system alike).
        times = H.measure_interleaved(ok, repeats=args.steps, min_time=SAMPLE_TIME, budget=0.0) if ok else {}
        all_fns[name] = fns
        cells = []
        for s in SYSTEMS:
            note = "" if s in times else ("WRONG" if isinstance(fns.get(s), AssertionError) else "error")
            results.append({"model": name, "system": s, "seconds": times.get(s), "note": note})
            cells.append(f"{times[s] * 1e3:.2f}" if s in times else note)
        label = "LeNet-5, batch 64" if name == "lenet" else "MLP 784-512-512-10, batch 128"
        rows.append([label, *cells,
                     H.fmt_ratio(times.get("ours eager"), times.get("torch")),
                     H.fmt_ratio(times.get("ours lazy"), times.get("torch")),
                     H.fmt_ratio(times.get("ours compiled"), times.get("torch"))])
        sys.stdout.flush()

    print(f"## Training step (ms per step: min over {args.steps} interleaved samples of >= {SAMPLE_TIME * 1e3:.0f} ms "
          "of consecutive steps; lower is better)\n")
    print(H.markdown_table(["model", "torch", "ours eager", "ours lazy", "ours compiled", "eager/torch", "lazy/torch",
                            "compiled/torch"], rows))
    print(f"\nOne step = forward + cross-entropy + gradients + SGD(lr={LR}, momentum={MOMENTUM}). "
          f"Losses of the first {CHECK_STEPS} steps (checked against torch, rtol 1e-4):")
    for name, losses in checked.items():
        for s, v in losses.items():
            print(f"- {name} {s}: " + ", ".join(f"{x:.6f}" for x in v))
    print()

    # -- target
    def secs(model: str, system: str) -> float | None:
        return next((r["seconds"] for r in results if r["model"] == model and r["system"] == system), None)

    targets = []
    if "lenet" in args.only:
        for system, limit, text in (
                ("ours lazy", TARGET_LIMIT, f"lazy LeNet-5 step no slower than {TARGET_LIMIT}x torch (training issue)"),
                ("ours compiled", 1.0, "compiled LeNet-5 step no slower than torch (CPU-speed issue)")):
            ours, ref = secs("lenet", system), secs("lenet", "torch")
            if ours is None or ref is None:
                targets.append({"target": text, "ratio": None, "limit": limit, "result": "NOT RUN"})
            else:
                r = ours / ref
                targets.append({"target": text, "ratio": r, "limit": limit, "result": "PASS" if r <= limit else "FAIL"})
    for t in targets:
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        print(f"targets: {t['target']}: {t['result']} ({ratio}, limit {t['limit']:.2f}x)")
    print()

    if args.profile:
        psteps = max(5, args.steps // 2)
        for name, fns in all_fns.items():
            prof = profile_sections(F, nn, fns, psteps)
            profiles[name] = {"sections_ms": prof}
            print(f"## Profile: {name} (median ms per section over {psteps} steps)\n")
            for system, secs_ms in prof.items():
                total = sum(secs_ms.values())
                parts = ", ".join(f"{k} {v:.2f}" for k, v in secs_ms.items())
                print(f"- {system}: {parts} (sum {total:.2f} ms)")
            print()
            fn = fns.get("ours eager")
            if fn is not None and not isinstance(fn, BaseException):
                ops = op_profile(fn, psteps, top=20)
                profiles[name]["eager ops"] = ops
                print(f"Eager native calls, {name} (ms per step: min over {psteps} steps per op):\n")
                print(H.markdown_table(["op", "input shapes", "ms/step", "calls/step"],
                                       [[r["op"], r["shapes"], f"{r['ms_per_step']:.3f}",
                                         f"{r['calls_per_step']:g}"] for r in ops]))
                print()
            for system in ("ours eager", "ours lazy"):
                fn = fns.get(system)
                if fn is None or isinstance(fn, BaseException):
                    continue
                top = cprofile_top(fn, psteps)
                profiles[name][f"cprofile {system}"] = top
                print(f"cProfile, {name} {system}, {psteps} steps, by own time:\n\n```\n{top}\n```\n")

    load_end = H.load_average()
    print(f"Ran in {time.perf_counter() - start:.1f} s; load average (1 min) at the end: "
          f"{'?' if load_end is None else f'{load_end:.2f}'}.")
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}")
    if errors:
        print("\n## Errors (these systems did not run or gave wrong results)\n")
        for e in errors:
            print(f"- {e}")
    if args.json:
        info["load_1min_end"] = load_end
        H.write_json(args.json, {"machine": info, "args": vars(args), "results": results, "losses": checked,
                                 "targets": targets, "profiles": profiles, "errors": errors})
        print(f"\nwrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
