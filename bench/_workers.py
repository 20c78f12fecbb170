"""One worker process per system for bench/suite.py: each system runs alone in its own process.

Thread pools of different libraries in one process get in each other's way on a small shared
machine (torch's and MNN's OpenMP runtimes, OpenBLAS, onnxruntime's pool and ours would all
live side by side), so the suite starts one worker per system (``ours``, ``numpy``, ``torch``,
``onnxruntime``, ``MNN``) that imports only that system, and drives them from the parent:
the parent builds nothing it times; it sends each worker a workload *spec* (seeds, shapes,
file paths), the worker builds the callable and returns its output once (the parent checks it
against a reference), then the parent asks the workers for timed samples in turn.

Commands (tuples over a ``multiprocessing`` pipe; every answer is ``("ok", value)``,
``("na", reason)`` or ``("error", message)``):

- ``("build", wid, section, spec)`` -> the output of one call, as a numpy array;
- ``("prepare", wid, min_time, quick)`` -> calls per sample (after warming up);
- ``("sample", wid, number)`` -> seconds per call over ``number`` calls (after one untimed call);
- ``("drop", wid)``, ``("quit",)``.

Like ``_harness``, nothing heavy is imported at module level.

>>> sorted(BUILDERS)
['conv', 'gemm', 'models', 'overhead', 'train']
"""

from __future__ import annotations

import os
import sys
import time
import timeit
from typing import Any, Callable

SYSTEMS = ("ours", "numpy", "torch", "onnxruntime", "MNN")


class _Arr:
    """A numpy array that answers ``detach().numpy()`` like a torch tensor (for bench/train.py's ``ours``)."""

    def __init__(self, a: Any) -> None:
        self.a = a

    def detach(self) -> _Arr:
        return self

    def numpy(self) -> Any:
        return self.a


class Context:
    """The imported modules of one worker's system, and its thread count."""

    def __init__(self, system: str, threads: int) -> None:
        import _harness as H
        import _refs as R
        import numpy as np

        self.system, self.threads, self.np, self.R = system, threads, np, R
        self.torch = self.ort = self.MNN = self.F = None
        if system == "numpy":
            self.blas = H.limit_blas_threads(threads)
            self.version = np.__version__  # the header prints its BLAS (same library as the parent's)
        elif system == "torch":
            import torch

            if torch.get_num_threads() != threads:  # only when it differs: see bench/ops.py
                torch.set_num_threads(threads)
            self.torch, self.version = torch, torch.__version__
        elif system == "onnxruntime":
            import onnxruntime

            self.ort, self.version = onnxruntime, onnxruntime.__version__
        elif system == "MNN":
            self.MNN, self.version = R.import_mnn(threads)
            if self.MNN is None:
                raise R.Unavailable(f"MNN {self.version}")
        elif system in ("ours", "peak"):  # peak: ours's FMA probe, timed beside the GEMMs
            import mnn_expr as F

            F.set_thread_number(threads)
            self.F, self.version = F, f"{getattr(F, '__version__', '?')} ({os.path.dirname(F.__file__)})"
        else:
            raise ValueError(f"unknown system {system!r}")


def _np_out(ctx: Context, out: Any) -> Any:
    np = ctx.np
    if ctx.system == "MNN":
        return ctx.R.mnn_read(np, out)
    if hasattr(out, "detach"):
        return out.detach().numpy()
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)


# --------------------------------------------------------------------------- builders
# Each takes (ctx, spec) and returns a zero-argument callable (what is timed) and a check
# callable returning a numpy array (what the parent compares with its reference).

def _gemm(ctx: Context, spec: dict) -> tuple[Callable, Callable]:
    np, n = ctx.np, spec["n"]
    rng = np.random.default_rng(n)
    a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    if ctx.system == "numpy":
        fn = lambda: a @ b  # noqa: E731
    elif ctx.system == "torch":
        ta, tb, torch = ctx.torch.from_numpy(a), ctx.torch.from_numpy(b), ctx.torch
        fn = lambda: torch.mm(ta, tb)  # noqa: E731
    elif ctx.system == "MNN":
        ma, mb, mm = ctx.R.mnn_const(ctx.MNN, a), ctx.R.mnn_const(ctx.MNN, b), ctx.MNN.expr.matmul
        fn = lambda: mm(ma, mb)  # noqa: E731  (eager in MNN's default mode)
    elif ctx.system == "ours":
        A, B, mm = ctx.F.asarray(a), ctx.F.asarray(b), ctx.F.matmul
        fn = lambda: mm(A, B)  # noqa: E731
    elif ctx.system == "peak":  # as many FLOPs as the product, in registers only; no output to check
        from mnn_expr import _native

        fn = lambda: _native.fma_run(2 * n ** 3)  # noqa: E731
        return fn, lambda: None
    else:
        raise ctx.R.Unavailable(f"{ctx.system} is not part of this workload")
    return fn, lambda: _np_out(ctx, fn())


def conv_arrays(np: Any, spec: dict) -> tuple[Any, Any, Any]:
    """The input, weight and bias of a conv spec (the same in every process)."""
    cin, cout, hw, k, groups = spec["cin"], spec["cout"], spec["hw"], spec["k"], spec["groups"]
    rng = np.random.default_rng(cin * 1000 + hw)
    x = rng.standard_normal((1, cin, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((cout, cin // groups, k, k)) * (2.0 / (cin // groups * k * k)) ** 0.5).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    return x, w, b


def _conv(ctx: Context, spec: dict) -> tuple[Callable, Callable]:
    x, w, b = conv_arrays(ctx.np, spec)
    stride, pad, groups = spec["stride"], spec["k"] // 2, spec["groups"]
    if ctx.system == "torch":
        torch = ctx.torch
        tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        conv2d = torch.nn.functional.conv2d

        def fn() -> Any:
            with torch.no_grad():
                return conv2d(tx, tw, tb, stride, pad, 1, groups)
    elif ctx.system == "onnxruntime":
        sess = ctx.R.ort_session(ctx.ort, spec["onnx"], ctx.threads)
        fn = lambda: sess.run(None, {"x": x})[0]  # noqa: E731
    elif ctx.system == "ours":
        F = ctx.F
        # Weights in memory of their own, as a model's are: kernels keep them packed across calls
        # (numpy memory shared by F.asarray could be rewritten, so it is never cached).
        X, W, B = F.asarray(x), F.array(w), F.array(b)
        fn = lambda: F.conv2d(X, W, B, stride=stride, padding=pad, groups=groups)  # noqa: E731
    else:
        raise ctx.R.Unavailable(f"{ctx.system} is not part of this workload")
    return fn, lambda: _np_out(ctx, fn())


def _models(ctx: Context, spec: dict) -> tuple[Callable, Callable]:
    np, R = ctx.np, ctx.R
    x = np.load(spec["x"])
    if ctx.system == "torch":
        import models as M

        torch = ctx.torch
        model = M.build(spec["name"], torch)
        model.load_state_dict(torch.load(spec["state"]))
        tx = torch.from_numpy(x)

        def fn() -> Any:
            with torch.no_grad():
                return model(tx)
    elif ctx.system == "onnxruntime":
        sess = R.ort_session(ctx.ort, spec["onnx"], ctx.threads)
        fn = lambda: sess.run(None, {"x": x})[0]  # noqa: E731
    elif ctx.system == "MNN":
        if not spec.get("mnn"):
            raise R.Unavailable(spec.get("mnn_error") or "no .mnn file")
        net = R.mnn_module(ctx.MNN, spec["mnn"], ctx.threads)
        mx = R.mnn_const(ctx.MNN, x)

        def fn() -> Any:
            y = net.forward(mx)
            y.read()  # computes (nothing left to do when the module already ran eagerly)
            return y
    elif ctx.system == "ours":
        if not spec.get("mnnx"):
            raise R.Unavailable(spec.get("mnnx_error") or "no .mnnx file")
        import mnn_nn

        F = ctx.F
        model = mnn_nn.load(spec["mnnx"])
        xv = F.asarray(x)

        def fn() -> Any:
            with F.lazy_eval(True):
                y = model(xv)
                y.read()
            return y
    else:
        raise R.Unavailable(f"{ctx.system} is not part of this workload")
    return fn, lambda: _np_out(ctx, fn())


def _train(ctx: Context, spec: dict) -> tuple[Callable, Callable]:
    import train as T  # bench/train.py

    np, name = ctx.np, spec["model"]
    if ctx.system == "torch":
        torch = ctx.torch
        torch.manual_seed(0)
        state = T.torch_model(name, torch).state_dict()
        fn = T.Systems(np, torch, None, None, None).torch_step(name, state)
    elif ctx.system == "ours":
        import mnn_nn
        import mnn_optim

        state = {k: _Arr(v) for k, v in np.load(spec["state"]).items()}
        fn = T.Systems(np, None, ctx.F, mnn_nn, mnn_optim).compiled_step(name, state)
    else:
        raise ctx.R.Unavailable(f"{ctx.system} is not part of this workload")

    def check() -> Any:  # the losses of the first steps (every system starts from the same weights and batch)
        return np.array([T.loss_value(fn()) for _ in range(T.CHECK_STEPS)])

    return fn, check


def _overhead(ctx: Context, spec: dict) -> tuple[Callable, Callable]:
    import argparse

    import ops as O  # bench/ops.py

    np, n = ctx.np, spec["n"]
    rng = np.random.default_rng(n)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    if ctx.system in ("numpy", "torch", "ours"):  # bench/ops.py's systems
        bench = O.Bench(argparse.Namespace(quick=True, threads=ctx.threads, only=["overhead"]), np, ctx.torch,
                        ctx.F if ctx.F is not None else _NoOurs())
        add = lambda x, y: x + y  # noqa: E731
        fns = bench.systems_for([a, b], add, add, add, lazy=False)
        fn = fns[ctx.system]
        if isinstance(fn, BaseException):
            raise fn
    elif ctx.system == "MNN":
        ma, mb = ctx.R.mnn_const(ctx.MNN, a), ctx.R.mnn_const(ctx.MNN, b)
        fn = lambda: ma + mb  # noqa: E731  (eager in MNN's default mode)
    else:
        raise ctx.R.Unavailable(f"{ctx.system} is not part of this workload")
    return fn, lambda: _np_out(ctx, fn())


class _NoOurs:
    """Stands in for mnn_expr in workers of other systems (bench/ops.py's systems_for builds ours too)."""

    def array(self, a: Any) -> Any:
        raise RuntimeError("mnn_expr is not loaded in this worker")


BUILDERS: dict[str, Callable[[Context, dict], tuple[Callable, Callable]]] = {
    "gemm": _gemm, "conv": _conv, "models": _models, "train": _train, "overhead": _overhead}


# --------------------------------------------------------------------------- the worker loop

def worker_main(conn: Any, system: str, threads: int, paths: list[str]) -> None:
    """Runs in the worker process: imports ``system``, then answers the parent's commands until "quit"."""
    import socket

    socket.setdefaulttimeout(5.0)  # no system here should touch the network; never hang on a socket if one does
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    import _harness as H
    import _refs as R

    try:
        ctx = Context(system, threads)
    except Exception as e:  # noqa: BLE001  (not installed, or broken: the parent prints n/a)
        conn.send(("na", f"not installed ({R.short(e, 120)})" if isinstance(e, ImportError) else R.short(e, 160)))
        return
    conn.send(("ok", ctx.version))
    fns: dict[Any, Callable] = {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        cmd = msg[0]
        if cmd == "quit":
            conn.send(("ok", None))
            return
        try:
            if cmd == "build":
                _, wid, section, spec = msg
                fn, check = BUILDERS[section](ctx, spec)
                out = check()
                fns[wid] = fn
                conn.send(("ok", out))
            elif cmd == "prepare":
                _, wid, min_time, quick = msg
                fn = fns[wid]
                H.warm_up(fn, min_calls=3, min_time=0.01 if quick else 0.05, max_time=0.1 if quick else 0.6)
                conn.send(("ok", H.calibrate(fn, min_time)))
            elif cmd == "sample":
                _, wid, number = msg
                t0 = time.perf_counter()
                fns[wid]()  # untimed: wakes this library's worker threads, parked while other systems ran
                dt = timeit.Timer(fns[wid]).timeit(number)
                conn.send(("ok", (dt / number, time.perf_counter() - t0)))
            elif cmd == "drop":
                fns.pop(msg[1], None)
                conn.send(("ok", None))
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except R.Unavailable as e:
            conn.send(("na", str(e)))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", R.short(e, 300)))
