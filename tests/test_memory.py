"""Memory stays flat (DESIGN §4): a Var keeps its history while anyone may need it, and no longer.

An eager NumPy-style loop over large arrays must run in constant memory; a lazy graph,
once read and dropped, must leave nothing behind; borrowed numpy buffers must be
released.  RSS is read from /proc/self/statm (Linux); each check measures after a
warm-up so allocator pools and the thread pool are already in place.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mnn_expr as F

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)"
)

MB = 1 << 20
N = 1 << 20  # 1M float32 elements = 4 MB


def rss() -> int:
    """Resident set size of this process in bytes."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_eager_loop_runs_in_flat_memory() -> None:
    """10,000 eager ops over a 4 MB array: memory grows by a few arrays at most, and no history is kept."""
    x = F.asarray(np.linspace(0.0, 1.0, N, dtype=np.float32))
    ref = np.linspace(0.0, 1.0, N, dtype=np.float32)
    for _ in range(50):  # warm-up: allocator and thread pool settle
        x = x * 1.0001 + 0.0001
        ref = ref * np.float32(1.0001) + np.float32(0.0001)
    before = rss()
    for i in range(5000):  # 2 ops per iteration
        if i % 2:
            x = x * 1.0001 + 0.0001
            ref = ref * np.float32(1.0001) + np.float32(0.0001)
        else:
            x = F.maximum(x - 0.0001, -1.0)
            ref = np.maximum(ref - np.float32(0.0001), np.float32(-1.0))
    grown = rss() - before
    assert not x._has_history, "an eager result keeps its producing op although nobody needs it"
    assert x.inputs == [], "an eager result keeps its inputs alive"
    np.testing.assert_allclose(x.read(), ref, rtol=1e-5, atol=1e-6)
    assert grown < 40 * MB, f"RSS grew by {grown / MB:.1f} MB over 10,000 eager ops on a 4 MB array"


def test_eager_loop_with_every_dtype_keeps_no_history() -> None:
    for dt in ("int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"):
        x = F.ones(1000, dt)
        for _ in range(20):
            x = (x + 1) * 1
        assert not x._has_history, dt
        assert x._computed, dt


def test_lazy_graphs_do_not_leak_across_repetitions() -> None:
    """Build a lazy chain over 4 MB arrays, read it, drop it; 50 times: RSS stays flat and the
    plan cache holds one plan."""
    base = np.random.default_rng(0).standard_normal(N).astype(np.float32)

    def once(k: int) -> float:
        with F.lazy_eval(True):
            a = F.array(base)
            y = a
            for _ in range(4):
                y = y * 0.9 + 0.1
            y = F.tanh(y)
            z = y * float(k)
            assert not z._computed
            out = z.read()
            assert not z._has_history and z.inputs == []
            return float(out[0])

    F.clear_plan_cache()
    for k in range(5):  # warm-up
        once(k)
    before = rss()
    for k in range(50):
        once(k)
    grown = rss() - before
    assert grown < 40 * MB, f"RSS grew by {grown / MB:.1f} MB over 50 lazy graphs of 4 MB arrays"
    stats = F.plan_cache_stats()
    assert stats["size"] == 1, f"one structure should give one cached plan, got {stats}"
    assert stats["hits"] >= 54 and stats["misses"] == 1, stats


def test_lazy_intermediates_are_freed_after_reading() -> None:
    """Reading the end of a long lazy chain must not keep every intermediate alive (slots are freed
    after their last reader): the PEAK memory of the evaluation stays a few arrays, not the chain
    length.  Peak RSS (ru_maxrss) is measured in a fresh process."""
    code = textwrap.dedent(
        """
        import resource
        import numpy as np
        import mnn_expr as F
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        (F.ones(1 << 20) + 1.0).read()  # warm-up
        with F.lazy_eval(True):
            x = F.array(np.ones(1 << 20, np.float32))
            y = x
            for _ in range(60):  # 60 intermediates of 4 MB = 240 MB if all were kept
                y = y + 1.0
            before = peak()
            out = y.read()
        assert out[0] == 61.0 and out[-1] == 61.0
        print(peak() - before)
        """
    )
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root, env=env
    )
    assert proc.returncode == 0, proc.stderr
    grown = int(proc.stdout.split()[-1])
    assert grown < 60 * MB, f"peak RSS grew by {grown / MB:.1f} MB evaluating a 60-op chain on 4 MB arrays"


def test_requires_grad_keeps_history() -> None:
    x = F.ones((3, 4))
    x.requires_grad = True
    y = x * 2.0 + 1.0
    assert y._has_history, "history must be kept for gradients when an input requires_grad"
    assert y.requires_grad
    assert y._computed, "eager mode still computes the value"
    np.testing.assert_array_equal(y.read(), np.full((3, 4), 3.0, np.float32))
    z = F.ones((3, 4)) * 2.0  # no grad wanted: no history
    assert not z._has_history


def test_trainable_keeps_history() -> None:
    w = F.array(np.arange(6, dtype=np.float32))
    w.fix_as_trainable()
    assert w.op_type == "Trainable"
    y = F.exp(w) * 3.0
    assert y._has_history
    with F.lazy_eval(True):
        z = w * 2.0
        z.read()
        assert z._has_history, "evaluation must not drop history that gradients may need"


def test_asarray_releases_the_numpy_buffer() -> None:
    """Zero-copy import holds a reference to the numpy array exactly as long as the Var lives."""
    arr = np.ones(1000, np.float32)
    base = sys.getrefcount(arr)
    v = F.asarray(arr)
    assert sys.getrefcount(arr) > base  # the Var keeps the buffer alive
    y = v + 1.0
    del v, y
    gc.collect()
    assert sys.getrefcount(arr) == base, "the numpy array is still referenced after its Var is gone"


def test_read_arrays_release_the_var_storage() -> None:
    """Arrays returned by read() own a reference to the storage; dropping both frees it (no leak over
    many round trips of 4 MB values)."""
    data = np.ones(N, np.float32)
    for _ in range(5):
        (F.array(data) + 1.0).read()
    before = rss()
    for _ in range(200):
        v = F.array(data) + 1.0
        a = v.read()
        b = np.asarray(v)
        del v, a, b
    grown = rss() - before
    assert grown < 40 * MB, f"RSS grew by {grown / MB:.1f} MB over 200 read() round trips of 4 MB"


def test_many_small_ops_do_not_leak() -> None:
    """Per-op bookkeeping (nodes, attrs, Python handles) is released: 100,000 tiny ops stay flat."""
    x = F.ones(4)
    for _ in range(2000):
        x = x + 1.0
    before = rss()
    for _ in range(100_000):
        x = x + 1.0
    grown = rss() - before
    assert grown < 8 * MB, f"RSS grew by {grown / MB:.1f} MB over 100,000 tiny eager ops"
    with F.lazy_eval(True):
        for _ in range(200):
            y = F.ones(4)
            for _ in range(20):
                y = y * 1.0
            y.read()
        before = rss()
        for _ in range(2000):
            y = F.ones(4)
            for _ in range(20):
                y = y * 1.0
            y.read()
    grown = rss() - before
    assert grown < 8 * MB, f"RSS grew by {grown / MB:.1f} MB over 2,000 small lazy graphs"
