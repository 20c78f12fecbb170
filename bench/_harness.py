"""Shared helpers for mnnpy's side-by-side benchmarks (bench/*.py).

This module must stay importable BEFORE numpy: a benchmark calls
:func:`prepare_process` first thing, which may re-exec the interpreter and sets
thread-count environment variables that OpenBLAS only reads when it loads.
So nothing here imports numpy, torch or mnn_expr at module level.

Typical use::

    import _harness as H
    args = parse_args()                      # argparse only, no numpy yet
    H.prepare_process(threads=args.threads)  # may re-exec; sets OPENBLAS_NUM_THREADS
    import numpy as np                       # now safe
    blas = H.limit_blas_threads(args.threads)
    t = H.measure(lambda: a + b, repeats=5)  # seconds per call, min of repeats
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from typing import Any, Callable

# OpenBLAS tuning variables that, when set in a shared environment, can pick a slow
# kernel for numpy; a benchmark removes them from its own process.
OPENBLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_MARK = "MNNPY_BENCH_REEXEC"
_REMOVED_MARK = "MNNPY_BENCH_REMOVED_ENV"
_THREAD_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

LOAD_WARN = 1.5  # 1-minute load average above which 2-thread timings are unreliable


# --------------------------------------------------------------------------- process setup

def _numpy_already_imported() -> bool:
    return "numpy" in sys.modules


def reexec_without_openblas_env(names: Sequence[str] = OPENBLAS_ENV_VARS) -> None:
    """Re-executes this interpreter with ``names`` removed from its environment.

    Only this process (and its children) see the change.  Does nothing when none
    of the variables is set.  Must run before numpy is imported: OpenBLAS reads
    them when it loads.  The removed values are kept in ``MNNPY_BENCH_REMOVED_ENV``
    so the report can say what was removed.
    """
    present = {k: os.environ[k] for k in names if k in os.environ}
    if not present:
        return
    if os.environ.get(_REEXEC_MARK):  # already re-executed once: never loop
        raise RuntimeError(f"bench: {sorted(present)} still set after re-exec; refusing to loop")
    if _numpy_already_imported():
        raise RuntimeError("bench: reexec_without_openblas_env() must run before numpy is imported")
    env = {k: v for k, v in os.environ.items() if k not in present}
    env[_REEXEC_MARK] = "1"
    env[_REMOVED_MARK] = ";".join(f"{k}={v}" for k, v in present.items())
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def removed_env() -> dict[str, str]:
    """Variables that :func:`reexec_without_openblas_env` removed (name -> old value)."""
    raw = os.environ.get(_REMOVED_MARK, "")
    return dict(item.split("=", 1) for item in raw.split(";") if "=" in item)


def prepare_process(threads: int) -> None:
    """Re-exec without the OpenBLAS env vars, then pin BLAS/OpenMP thread env vars to ``threads``.

    Call before importing numpy (or anything that imports it).  The env vars are the
    fallback for when threadpoolctl (or our ctypes control) cannot set them later.
    """
    reexec_without_openblas_env()
    if _numpy_already_imported():
        raise RuntimeError("bench: prepare_process() must run before numpy is imported")
    for name in _THREAD_ENV_VARS:
        os.environ[name] = str(int(threads))


# --------------------------------------------------------------------------- BLAS control

class BlasInfo:
    """What we know about numpy's BLAS and how its threads were limited."""

    def __init__(self) -> None:
        self.library = "?"
        self.version = "?"
        self.kernel = "?"  # OpenBLAS core name, e.g. Haswell, SkylakeX, Cooperlake
        self.threads: int | None = None
        self.via = "env only"  # threadpoolctl | ctypes | env only
        self._keep: Any = None  # keeps a threadpoolctl limiter alive

    def describe(self) -> str:
        return (f"{self.library} {self.version}, kernel {self.kernel}, "
                f"{self.threads} threads (set via {self.via})")


def _openblas_paths() -> list[str]:
    """Paths of loaded shared libraries whose name mentions openblas (Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(paths)


def _ctypes_openblas(threads: int, info: BlasInfo) -> bool:
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            try:
                set_n = getattr(lib, f"{prefix}set_num_threads{suffix}")
                get_n = getattr(lib, f"{prefix}get_num_threads{suffix}")
                corename = getattr(lib, f"{prefix}get_corename{suffix}")
                config = getattr(lib, f"{prefix}get_config{suffix}")
            except AttributeError:
                continue
            set_n.argtypes, set_n.restype = [ctypes.c_int], None
            get_n.restype = ctypes.c_int
            corename.restype = config.restype = ctypes.c_char_p
            set_n(int(threads))
            info.library = os.path.basename(path)
            cfg = (config() or b"").decode(errors="replace")
            info.version = cfg.split(" ")[1] if cfg.startswith("OpenBLAS ") else cfg
            info.kernel = (corename() or b"?").decode(errors="replace")
            info.threads = int(get_n())
            info.via = "ctypes"
            return True
    return False


def limit_blas_threads(threads: int) -> BlasInfo:
    """Limits numpy's BLAS to ``threads`` threads and reports its kernel.

    Uses threadpoolctl when importable, else calls OpenBLAS through ctypes, else relies
    on the ``OPENBLAS_NUM_THREADS`` that :func:`prepare_process` set.  Call after
    importing numpy.
    """
    import numpy  # noqa: F401  (loads BLAS)

    info = BlasInfo()
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        info._keep = threadpoolctl.threadpool_limits(limits=int(threads), user_api="blas")
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        pools.sort(key=lambda p: "numpy" not in str(p.get("filepath", "")))  # numpy's own BLAS first
        if pools:
            pool = pools[0]
            info.library = pool.get("internal_api", "?")
            info.version = pool.get("version") or "?"
            info.kernel = pool.get("architecture") or "?"
            info.threads = pool.get("num_threads")
            info.via = "threadpoolctl"
            return info
    if not _ctypes_openblas(threads, info):
        info.threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or None
    return info


# --------------------------------------------------------------------------- timing

def warm_up(fn: Callable[[], Any], min_calls: int = 10, min_time: float = 0.05,
            max_time: float = 0.5) -> None:
    """Calls ``fn`` until it has run ``min_calls`` times for ``min_time`` seconds (or for ``max_time``).

    Libraries initialise lazily (kernels, thread pools, our lazy plan cache on the
    first read); warming up keeps that out of calibration and the timed samples.
    """
    start = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if (calls >= min_calls and elapsed >= min_time) or elapsed >= max_time:
            return


def calibrate(fn: Callable[[], Any], min_time: float = 0.02, max_number: int = 1_000_000) -> int:
    """Number of calls of ``fn`` (1, 2, 5, 10, 20, ...) that take at least ``min_time`` seconds.

    Each candidate is timed twice and the faster timing counts, so one burst of
    load cannot make it pick a number too small to time a fast op accurately.
    """
    timer = timeit.Timer(fn)
    number = 1
    while True:
        for mult in (1, 2, 5):
            n = number * mult
            if n >= max_number or min(timer.repeat(repeat=2, number=n)) >= min_time:
                return min(n, max_number)
        number *= 10


def measure(fn: Callable[[], Any], repeats: int = 5, number: int | None = None,
            min_time: float = 0.02) -> float:
    """Seconds per call of ``fn``: the minimum over ``repeats`` timings of ``number`` calls.

    ``number`` defaults to what :func:`calibrate` picks for ``min_time``.  The
    minimum is the least noisy estimate on a shared machine (noise only adds time).
    """
    if number is None:
        warm_up(fn)
        number = calibrate(fn, min_time)
    timer = timeit.Timer(fn)
    return min(timer.repeat(repeat=max(1, repeats), number=number)) / number


def measure_interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 5, min_time: float = 0.02,
                        budget: float = 0.0, settle: float = 0.12) -> dict[str, float]:
    """Seconds per call for each of ``fns``, timing them in turn within each round.

    Each sample runs a system's fn ``number`` times (calibrated so a sample lasts at
    least ``min_time``); the result is the minimum over the rounds.  There are at
    least ``repeats`` rounds, more when ``budget`` (seconds per system) allows:
    on a busy machine many short samples give a better chance of some that no
    other process interrupted than a few long ones.  Interleaving spreads a burst
    of load from other processes over every system instead of penalising
    whichever one happened to run during it.

    Before a sample of a slow (multi-threaded) call, the harness sleeps ``settle``
    seconds: OpenBLAS and OpenMP workers keep spinning for up to ~0.1 s after a
    call, and would otherwise take a core from whichever system runs next.
    """
    for fn in fns.values():
        warm_up(fn)
    numbers = {name: calibrate(fn, min_time) for name, fn in fns.items()}
    timers = {name: timeit.Timer(fn) for name, fn in fns.items()}
    best = {name: float("inf") for name in fns}
    rounds, spent = 0, 0.0  # `spent` counts timed work only, not the settling sleeps
    while rounds < max(1, repeats) or spent < budget * len(fns):
        for name, timer in timers.items():
            if numbers[name] <= 20 and len(timers) > 1:  # slow calls: let other libraries' threads go idle
                time.sleep(settle)
            t0 = time.perf_counter()
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
            spent += time.perf_counter() - t0
        rounds += 1
    return best


# --------------------------------------------------------------------------- machine header

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile")


def cpu_flags(wanted: Sequence[str] = _FLAGS) -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def git_revision(path: str) -> str:
    try:
        out = subprocess.run(["git", "-C", path, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info(threads: int, versions: dict[str, str], blas: BlasInfo | None = None,
                 repo: str | None = None) -> dict[str, Any]:
    """A dict describing this machine and run (printed by :func:`print_header`, saved in JSON)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads": threads,
        "load_1min": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": dict(versions),
        "removed_env": removed_env(),
    }
    if blas is not None:
        info["blas"] = {"library": blas.library, "version": blas.version, "kernel": blas.kernel,
                        "threads": blas.threads, "via": blas.via}
    if repo is not None:
        info["git"] = git_revision(repo)
    return info


def print_header(info: dict[str, Any], title: str) -> None:
    """Prints a short markdown header for ``info`` from :func:`machine_info`."""
    print(f"# {title}\n")
    flags = ", ".join(info["cpu_flags"]) or "-"
    print(f"- CPU: {info['cpu']} ({info['usable_cpus']} usable of {info['logical_cpus']} logical; {flags})")
    load = info["load_1min"]
    print(f"- threads: {info['threads']} per system; load average (1 min): "
          f"{'?' if load is None else f'{load:.2f}'}")
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"- python {info['python']}; {vers}")
    if "blas" in info:
        b = info["blas"]
        print(f"- numpy BLAS: {b['library']} {b['version']}, kernel {b['kernel']}, "
              f"{b['threads']} threads (set via {b['via']})")
    if info["removed_env"]:
        removed = ", ".join(f"{k}={v}" for k, v in info["removed_env"].items())
        print(f"- removed from this process's environment (re-exec): {removed}")
    if "git" in info:
        print(f"- mnnpy revision: {info['git']}")
    print()


def warn_if_loaded(limit: float = LOAD_WARN) -> str | None:
    """A warning line when the 1-minute load average is above ``limit`` (else None)."""
    load = load_average()
    if load is not None and load > limit:
        return (f"WARNING: 1-minute load average is {load:.2f} (> {limit}): other jobs share this machine, "
                f"so timings (especially multi-threaded ones) are unreliable; rerun when it is idle.")
    return None


# --------------------------------------------------------------------------- formatting

def fmt_time(seconds: float | None) -> str:
    """A time with a unit that keeps 3 significant digits (ns, µs, ms, s)."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    return f"{num / den:.2f}x"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; the first column is left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join([":" + "-" * (widths[0] + 1)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def write_json(path: str, payload: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
