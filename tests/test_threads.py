"""The thread pool (DESIGN §8): set_thread_number(n) controls it, results do not depend on
the thread count, and a fork (data-loader workers) never hangs."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import mnn_expr as F

ROOT = Path(__file__).resolve().parent.parent
N = 1_000_000


@pytest.fixture(autouse=True)
def restore_threads():
    before = F.get_thread_number()
    yield
    F.set_thread_number(before)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(N).astype(np.float32)
    b = rng.standard_normal((1000, 1)).astype(np.float32)  # broadcast against a reshaped (1000, 1000)
    c = rng.integers(-1000, 1000, N).astype(np.int32)
    return a, b, c


def _large_ops(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    x, bb, ci = F.array(a), F.array(b), F.array(c)
    x2 = F.array(a.reshape(1000, 1000))
    out = {
        "exp": F.exp(x),
        "tanh": F.tanh(x),
        "add_scalar": x * 1.5 + 0.25,
        "broadcast": x2 * bb - bb,
        "where": F.where(x > 0, x, -x),
        "cast_f16": x.astype("float16"),
        "cast_bf16": x.astype("bfloat16"),
        "cast_i8": ci.astype("int8"),
        "floordiv": ci // 7,
        "compare": x2 < bb,
        "erfinv": F.erfinv(F.tanh(x)),
    }
    return {k: v.read() for k, v in out.items()}


def _numpy_ops(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    a2 = a.reshape(1000, 1000)
    return {
        "exp": np.exp(a),
        "tanh": np.tanh(a),
        "add_scalar": a * np.float32(1.5) + np.float32(0.25),
        "broadcast": a2 * b - b,
        "where": np.where(a > 0, a, -a),
        "cast_f16": a.astype(np.float16),
        "cast_i8": c.astype(np.int8),
        "floordiv": c // 7,
        "compare": a2 < b,
    }


def test_get_and_set_thread_number() -> None:
    assert F.get_thread_number() >= 1
    F.set_thread_number(1)
    assert F.get_thread_number() == 1
    F.set_thread_number(2)
    assert F.get_thread_number() == 2
    F.set_thread_number(3)
    assert F.get_thread_number() == 3


@pytest.mark.parametrize("n", [0, -1, -100])
def test_invalid_thread_number(n: int) -> None:
    before = F.get_thread_number()
    with pytest.raises(ValueError, match="set_thread_number"):
        F.set_thread_number(n)
    assert F.get_thread_number() == before
    with pytest.raises((TypeError, ValueError)):
        F.set_thread_number("two")
    assert F.get_thread_number() == before


def test_results_do_not_depend_on_the_thread_count() -> None:
    a, b, c = _inputs()
    ref = _numpy_ops(a, b, c)
    results = {}
    for n in (1, 2, 4):
        F.set_thread_number(n)
        results[n] = _large_ops(a, b, c)
    for name in results[1]:
        for n in (2, 4):
            np.testing.assert_array_equal(
                results[n][name], results[1][name], err_msg=f"{name}: {n} threads vs 1"
            )
    for name, want in ref.items():  # and they are right
        got = results[2][name]
        if want.dtype.kind == "f" and name not in ("cast_f16",):
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


FAMILY_OPS = {  # ops of other families, picked up once they are merged
    "sum": (lambda m, x: m.sum(x, axis=1), lambda x: x.astype(np.float64).sum(axis=1)),
    "mean": (lambda m, x: m.mean(x, axis=0), lambda x: x.astype(np.float64).mean(axis=0)),
    "max": (lambda m, x: m.max(x, axis=1), lambda x: x.max(axis=1)),
    "cumsum": (lambda m, x: m.cumsum(x, axis=1), lambda x: x.astype(np.float64).cumsum(axis=1)),
    "matmul": (lambda m, x: m.matmul(x, x), lambda x: x.astype(np.float64) @ x),
}


@pytest.mark.parametrize("name", sorted(FAMILY_OPS))
def test_reductions_and_matmul_do_not_depend_on_the_thread_count(name: str) -> None:
    if not hasattr(F, name):
        pytest.skip(f"F.{name} is not merged yet")
    ours, ref = FAMILY_OPS[name]
    rng = np.random.default_rng(3)
    size = 300 if name == "matmul" else 1000
    a = rng.standard_normal((size, size)).astype(np.float32)
    got = {}
    for n in (1, 2, 4):
        F.set_thread_number(n)
        got[n] = ours(F, F.array(a)).read()
    np.testing.assert_array_equal(got[2], got[1], err_msg=f"{name}: 2 threads vs 1")
    np.testing.assert_array_equal(got[4], got[1], err_msg=f"{name}: 4 threads vs 1")
    np.testing.assert_allclose(got[1], ref(a), rtol=1e-4, atol=1e-3)


def test_set_thread_number_sizes_the_pool() -> None:
    """The pool really uses n threads: the process gains n-1 worker threads after a large op (run in a
    fresh process so no other library's threads interfere)."""
    code = textwrap.dedent(
        """
        import os
        import numpy as np
        import mnn_expr as F
        def threads():
            return len(os.listdir("/proc/self/task"))
        x = F.array(np.ones(1_000_000, np.float32))
        F.set_thread_number(1)
        (x + 1.0).read()
        base = threads()
        F.set_thread_number(4)
        (x + 1.0).read()
        four = threads()
        F.set_thread_number(1)
        (x + 1.0).read()
        print(base, four, threads())
        """
    )
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr
    base, four, back = map(int, out.stdout.split())
    assert four == base + 3, f"expected 3 worker threads for set_thread_number(4): {base} -> {four}"
    assert back == base, f"workers not released after set_thread_number(1): {base} -> {back}"


def _wait(pid: int, timeout: float) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _child_work() -> int:
    a = np.linspace(-1, 1, N, dtype=np.float32)
    got = (F.exp(F.array(a)) * 2.0).read()
    ok = np.allclose(got, np.exp(a) * 2, rtol=2e-6) and F.get_thread_number() >= 1
    F.set_thread_number(2)
    got2 = (F.tanh(F.array(a)) + 1.0).read()
    return 0 if ok and np.allclose(got2, np.tanh(a) + 1, rtol=2e-6, atol=1e-6) else 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_with_a_live_pool_does_not_hang() -> None:
    F.set_thread_number(2)
    x = F.array(np.ones(N, np.float32))
    (x * 2.0).read()  # the pool now has a live worker
    pid = os.fork()
    if pid == 0:  # child: must not touch pytest state; always _exit
        code = 4
        try:
            code = _child_work()
        finally:
            os._exit(code)
    status = _wait(pid, 60)
    assert status is not None, "the forked child hung running a large op"
    assert status == 0, f"the forked child failed (exit status {status})"
    (x * 3.0).read()  # the parent's pool still works
    np.testing.assert_array_equal((x + 1.0).read(), np.full(N, 2.0, np.float32))


def _mp_worker(seed: int) -> float:
    a = np.random.default_rng(seed).standard_normal(N).astype(np.float32)
    return float((F.abs(F.array(a)) * 1.0).read().sum() - np.abs(a).sum())


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_multiprocessing_fork_workers() -> None:
    F.set_thread_number(2)
    (F.ones(N) * 2.0).read()
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        res = pool.map_async(_mp_worker, range(4))
        diffs = res.get(timeout=120)
    assert all(abs(d) < 1e-2 for d in diffs), diffs


def test_repeated_forks_and_thread_changes() -> None:
    """Fork from a child that itself forked, after changing thread counts in between."""
    F.set_thread_number(3)
    (F.ones(N) + 1.0).read()
    pid = os.fork()
    if pid == 0:
        code = 5
        try:
            F.set_thread_number(2)
            (F.ones(N) + 1.0).read()
            pid2 = os.fork()
            if pid2 == 0:
                c2 = 6
                try:
                    c2 = _child_work()
                finally:
                    os._exit(c2)
            code = _wait(pid2, 60)
            code = 7 if code is None else code
        finally:
            os._exit(code)
    status = _wait(pid, 120)
    assert status == 0, f"nested fork: exit status {status} (7 = grandchild hung)"


def test_python_threads_share_the_pool() -> None:
    """Several Python threads running large ops at once get correct results and do not deadlock
    (in a subprocess, so a deadlock fails this test instead of hanging the run)."""
    code = textwrap.dedent(
        """
        import threading
        import numpy as np
        import mnn_expr as F
        F.set_thread_number(2)
        a = np.linspace(-3, 3, 1_000_000, dtype=np.float32)
        errors = []
        def work(k):
            for _ in range(10):
                got = (F.array(a) * float(k) + 1.0).read()
                if not np.array_equal(got, a * np.float32(k) + np.float32(1.0)):
                    errors.append(k)
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        print("errors", errors)
        assert not errors
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_idle_pool_threads_sleep() -> None:
    """Between ops the pool's workers sleep (after a ~100 µs spin), so numpy's or torch's threads in
    the same process get the cores: no oversubscription.  Process CPU time over an idle half second
    stays near zero (a spinning worker would use the whole half second)."""
    F.set_thread_number(2)
    x = F.array(np.random.default_rng(0).standard_normal(2_000_000).astype(np.float32))
    for _ in range(3):
        F.exp(x).read()
    time.sleep(0.05)
    t0 = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - t0 < 0.05


def test_worker_placement_keeps_results_and_can_be_switched_off() -> None:
    """Workers are kept off the caller's CPU (MNN_PIN_THREADS=0 leaves placement to the OS); the
    placement must not change results, in this process or in one with it switched off."""
    F.set_thread_number(2)
    a, b, c = _inputs()
    want = _numpy_ops(a, b, c)
    got = _large_ops(a, b, c)
    for k, v in want.items():
        np.testing.assert_allclose(got[k].astype(np.float64), v.astype(np.float64), rtol=1e-6, atol=1e-6,
                                   err_msg=k)
    code = "import mnn_expr as F, numpy as np; F.set_thread_number(2); print(float(F.exp(F.ones(10**6)).sum().item()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env=dict(os.environ, MNN_PIN_THREADS="0"))
    assert out.returncode == 0 and abs(float(out.stdout) - np.e * 1e6) < 1e-6 * np.e * 1e6, out.stderr
