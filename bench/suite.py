#!/usr/bin/env python
"""mnnpy's benchmark suite: one entry point, mnnpy side by side with every reference installed.

Runs, with the same thread count for every system (``--threads``, default 2), and prints a
markdown table per section with times and ratios ours / reference (time ratios: < 1 means
ours is faster), then saves a bar chart of those ratios:

- ``gemm``:     float32 square matmul 64…2048, GFLOP/s: ours (``mnn_expr.matmul``, eager),
                numpy (OpenBLAS), torch, MNN (``MNN.expr.matmul``, eager), against the machine's
                float32 peak: our FMA loop doing as many FLOPs, timed interleaved with the
                products (the header also prints its best short burst and the theoretical figure);
- ``conv``:     single convolution layers at ResNet / MobileNet shapes, batch 1: ours
                (``mnn_expr.conv2d``, eager), torch, onnxruntime (a one-node ONNX model);
- ``models``:   ResNet-18 and MobileNetV2 (1000 classes, random weights) at batch 1 and 8,
                224x224: torch (eager, ``no_grad``), onnxruntime (the torch model exported to
                ONNX, opset 17), MNN (that ONNX converted by MNN's converter, run by its Module
                API), ours in-process (the ONNX converted by ``mnnpy convert``, run by
                ``mnn_nn.load`` under ``lazy_eval``) and ours native (``mnnx-run --bench``);
- ``train``:    the LeNet-5 training step of bench/train.py: torch vs our compiled step;
- ``overhead``: eager ``a + b`` on 1 and 100 float32 elements (bench/ops.py's systems), plus MNN.

Usage (from the repository root, after building the native module)::

    python3 bench/suite.py                          # everything, 2 threads (a few minutes)
    python3 bench/suite.py --quick                  # smoke run: few iterations, small sizes
    python3 bench/suite.py --sections gemm,conv --threads 1
    python3 bench/suite.py --chart docs/suite.png --json bench/out/suite.json

Timing: each system runs in its own worker process (bench/_workers.py: one library's thread
pool never competes with another's), all started from this one, in one process group.  Every
system is checked against a reference result first (a wrong answer prints ``WRONG`` and is
not timed), warmed up, then timed in interleaved rounds (the workers take turns, one at a
time, in a rotating order; each sample is one untimed call and then back-to-back timed
calls, started only once no worker uses the CPUs: thread pools spin after a call, onnxruntime's
for ~35 ms of a core, which would otherwise slow down whichever system is timed next) and the
**median** per-call time is reported, marked ``~`` when it is more than 1.5x
the fastest sample.  A reference that is not installed or fails prints ``n/a`` and the reason
below its table; the suite goes on.

Exit status: 0 when every section ran and no system gave a wrong result; 1 otherwise.
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness as H  # noqa: E402  (imports nothing heavy: numpy must not be loaded yet)
import _refs as R  # noqa: E402  (likewise)

SECTIONS = ("gemm", "conv", "models", "train", "overhead", "scaling")
ONE_THREAD = "ours-1t"  # the scaling section's second worker of ours: the same library on one thread
PEAK = "peak"  # the gemm section's FMA-loop worker (ours's register-only probe, bench/_workers.py)
REFERENCES = ("numpy", "torch", "onnxruntime", "MNN")
DEFAULT_CHART = os.path.join("bench", "out", "suite.png")

BUSY_WARN = 0.25  # other processes' average CPU use during the run above which the end of the report warns
MODEL_TOL = 1e-3  # models: max |got - torch| <= MODEL_TOL * max |torch| + MODEL_TOL
GEMM_SIZES = (64, 128, 256, 512, 1024, 2048)
GEMM_SIZES_QUICK = (64, 256)
# --quick runs the first and the last of CONV_SHAPES
# (label, C_in, C_out, H(=W), kernel, stride, groups): ResNet-18/50 and MobileNetV2 layers, batch 1
CONV_SHAPES = (
    ("3x3 64->64, 56x56", 64, 64, 56, 3, 1, 1),
    ("3x3 s2 64->128, 56x56", 64, 128, 56, 3, 2, 1),
    ("1x1 256->64, 56x56", 256, 64, 56, 1, 1, 1),
    ("dw 3x3 32ch, 112x112", 32, 32, 112, 3, 1, 32),
    ("dw 3x3 576ch, 14x14", 576, 576, 14, 3, 1, 576),
)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: few iterations, small sizes (noisy)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--chart", default=DEFAULT_CHART, help=f"where to save the ratio chart (default {DEFAULT_CHART}); "
                   "'' for none")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--wait-idle", dest="wait_idle", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to SECONDS until other processes leave the CPUs idle for 5 s")
    p.add_argument("--skip", default="", help="comma-separated references to leave out (torch, onnxruntime, MNN); "
                   "they print n/a")
    p.add_argument("--models", default="resnet18,mobilenetv2", help="models section: which models")
    p.add_argument("--batches", default=None, help="models section: batch sizes (default 1,8; 1 with --quick)")
    p.add_argument("--mnnx-run", dest="mnnx_run", default=None,
                   help="path of the mnnx-run CLI (default: mnn_nn.deploy.runtime_cli(): on PATH, "
                   "else build/*/mnnx-run)")
    p.add_argument("--workdir", default=None,
                   help="where exported / converted models go (default: a temporary folder, removed at the end)")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in args.sections if s not in SECTIONS]
    if bad:
        p.error(f"--sections: unknown {bad}; choose from {list(SECTIONS)}")
    args.skip = [r.strip() for r in args.skip.split(",") if r.strip()]
    bad = [r for r in args.skip if r not in ("torch", "onnxruntime", "MNN")]
    if bad:
        p.error(f"--skip: unknown {bad}; choose from torch, onnxruntime, MNN")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in args.models if m not in ("resnet18", "mobilenetv2")]
    if bad:
        p.error(f"--models: unknown {bad}; choose from resnet18, mobilenetv2")
    if args.batches is None:
        args.batches = "1" if args.quick else "1,8"
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


# --------------------------------------------------------------------------- machine

def cpu_mhz() -> tuple[Optional[float], str]:
    """The highest clock we can find (MHz) and where it came from."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1000.0, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        import subprocess

        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("CPU max MHz:"):
                return float(line.split(":", 1)[1]), "lscpu 'CPU max MHz'"
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz")]
        if mhz:
            return max(mhz), "/proc/cpuinfo 'cpu MHz' (nominal: no max clock is published; turbo may be higher)"
    except (OSError, ValueError):
        pass
    return None, "unknown"


def _cpuinfo_field(name: str) -> Optional[str]:
    """The first ``name : value`` of /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def theoretical_peak(cores: int) -> tuple[Optional[float], str, int]:
    """(GFLOP/s, what it assumes, float32 FLOP per cycle per core): cores x clock x FMA pipes x
    float32 lanes x 2 from /proc/cpuinfo.

    The pipe count is not published by the CPU: it is inferred from vendor, family and ISA
    (Intel Xeon with AVX-512: two 512-bit FMA pipes, true of Skylake-SP Gold/Platinum and
    later; AMD Zen 4: 512-bit FMAs run on two 256-bit pipes, one zmm FMA per cycle; Zen 5:
    two 512-bit pipes; AVX2 parts: two 256-bit pipes).  The clock is the highest published
    (cpufreq / lscpu max) or else /proc/cpuinfo's current "cpu MHz" (under a hypervisor the
    nominal base clock; all-core AVX-512 turbo may be higher or lower)."""
    flags = set(H.cpu_flags(("avx512f", "avx2", "fma", "avx")))
    vendor = _cpuinfo_field("vendor_id") or "?"
    try:
        family = int(_cpuinfo_field("cpu family") or "0")
    except ValueError:
        family = 0
    if "avx512f" in flags:
        lanes = 16
        if vendor == "AuthenticAMD" and family < 0x1A:
            pipes, why = 1, "AMD Zen 4: one 512-bit FMA per cycle (two 256-bit pipes)"
        else:
            part = "AMD Zen 5" if vendor == "AuthenticAMD" else "Intel Xeon"
            pipes, why = 2, f"{part}: two 512-bit FMA pipes assumed"
    elif "avx2" in flags and "fma" in flags:
        lanes, pipes, why = 8, 2, "AVX2+FMA: two 256-bit FMA pipes assumed"
    elif "avx" in flags:
        lanes, pipes, why = 8, 1, "AVX: 8 lanes, separate mul + add (counted as one FMA pipe)"
    else:
        lanes, pipes, why = 4, 1, "SSE: 4 lanes, separate mul + add (counted as one FMA pipe)"
    mhz, src = cpu_mhz()
    if mhz is None:
        return None, f"unknown clock ({why})", pipes * lanes * 2
    gf = cores * mhz / 1000.0 * pipes * lanes * 2
    return gf, (f"{cores} cores x {mhz:.0f} MHz [{src}] x {pipes} FMA pipe(s) x {lanes} float32 lanes x 2 "
                f"= {gf:.0f} GFLOP/s [{why}; assumes each thread has a core of its own]"), pipes * lanes * 2


def measured_peak(threads: int, seconds: float = 0.2) -> tuple[Optional[dict], str]:
    """mnnpy's native FMA-throughput probe (``_native.fma_peak``) on ``threads`` and on 1 thread
    of its pool, in a subprocess (this process never starts mnnpy's thread pool)."""
    import json
    import subprocess

    code = ("import json, mnn_expr as F; from mnn_expr import _native; "
            f"F.set_thread_number({threads}); "
            f"print(json.dumps([_native.fma_peak({threads}, {seconds}), _native.fma_peak(1, {seconds / 2})]))")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return None, (out.stderr.strip().splitlines() or ["failed"])[-1]
        many, one = json.loads(out.stdout.strip().splitlines()[-1])
        many["one_thread_gflops"] = one["gflops"]
        return many, ""
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return None, str(e)


def peak_estimate(threads: int) -> tuple[Optional[float], str]:
    """(GFLOP/s, explanation): the **measured** float32 peak (a register-only FMA loop at the widest
    ISA the GEMM dispatcher picks, on ``threads`` threads of our pool at once for ~0.2 s), which
    the GEMM table's "% of peak" uses, with the theoretical figure beside it."""
    try:
        cores = min(threads, len(os.sched_getaffinity(0)))
    except AttributeError:
        cores = min(threads, os.cpu_count() or 1)
    theo, theo_text, per_cycle = theoretical_peak(cores)
    m, why = measured_peak(threads)
    if m is None:
        return theo, f"theoretical {theo_text} (the measured probe failed: {why})"
    frac = f", {m['gflops'] / theo * 100:.0f}% of theoretical" if theo else ""
    if m["threads"] > 1 and m["gflops"] < 1.5 * m["one_thread_gflops"]:
        frac += (f" (CONTENDED: {m['threads']} threads reached less than 1.5x one thread, so other processes held "
                 "cores; the % of peak below is unreliable)")
    clock = f"; the 1-thread probe implies {m['one_thread_gflops'] / per_cycle:.2f} GHz at {per_cycle} FLOP/cycle"
    return m["gflops"], (f"measured {m['gflops']:.0f} GFLOP/s on {m['threads']} thread(s) "
                         f"({m['one_thread_gflops']:.0f} on 1): an FMA loop at {m['level']} ({m['lanes']} "
                         f"independent float32 multiply-adds per round, no memory traffic), best of ~10 ms runs "
                         f"over 0.2 s{frac}; "
                         f"theoretical {theo_text}{clock}")


def cpu_busy(seconds: float = 1.0) -> Optional[tuple[float, float]]:
    """(CPUs busy, CPUs stolen by the hypervisor), averaged over ``seconds`` of this process sleeping.

    Read from /proc/stat: unlike the load average (a 1-minute moving average), this says
    whether other processes are running right now.  None where /proc/stat is missing."""
    def snap() -> Optional[list[int]]:
        try:
            with open("/proc/stat") as f:
                return [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None

    a = snap()
    time.sleep(seconds)
    b = snap()
    if a is None or b is None:
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8]) or 1
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    steal = d[7] if len(d) > 7 else 0
    ncpu = os.cpu_count() or 1
    return (total - idle - steal) / total * ncpu, steal / total * ncpu


def busy_seconds() -> Optional[float]:
    """CPU-seconds every process on the machine has used since boot (user + system + irq), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(v[:8]) - v[3] - v[4] - v[7]) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU-seconds used by this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_idle(limit_s: float, busy_max: float = 0.25, quiet_s: int = 5) -> str:
    """Waits (up to ``limit_s``) until other processes use under ``busy_max`` CPUs for ``quiet_s`` seconds in a row."""
    deadline = time.monotonic() + limit_s
    quiet = 0
    while time.monotonic() < deadline:
        busy = cpu_busy(1.0)
        if busy is None:
            return "no /proc/stat: not waited"
        quiet = quiet + 1 if busy[0] < busy_max else 0
        if quiet >= quiet_s:
            return f"quiet after {limit_s - (deadline - time.monotonic()):.0f} s"
    return f"still busy after {limit_s:.0f} s: running anyway"


# --------------------------------------------------------------------------- worker processes

QUIET_POLL = 0.001  # Workers.wait_quiet: how often it looks, and for how many looks in a row it must see no
QUIET_LOOKS = 3     # worker thread running
QUIET_TIMEOUT = 0.25
QUIET_FALLBACK = 0.05


def _running_threads(pids: list[int]) -> Optional[int]:
    """How many threads of ``pids`` are running or runnable now (Linux /proc state R); None where
    it cannot be read.  (A spinning pool's threads are always R; CPU-time counters would not do:
    they advance only at scheduler ticks.)"""
    running = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        stat = f.read()
                except FileNotFoundError:  # (the thread just ended)
                    continue
                running += stat[stat.rindex(")") + 2] == "R"
        except (OSError, ValueError):
            return None
    return running


class Workers:
    """One worker process per system (bench/_workers.py), and interleaved timing across them."""

    def __init__(self, systems: list[str], threads: int, quick: bool, skip: list[str]) -> None:
        import multiprocessing

        import _workers as W

        self.quick = quick
        self.conns: dict[str, Any] = {}
        self.procs: dict[str, Any] = {}
        self.version: dict[str, str] = {}
        self.reason: dict[str, str] = {}  # system -> why it cannot run (not installed, skipped, died)
        mp = multiprocessing.get_context("spawn")
        for system in systems:
            if system in skip:
                self.reason[system] = "skipped (--skip)"
                continue
            parent, child = mp.Pipe()
            lib, n = ("ours", 1) if system == ONE_THREAD else (system, threads)
            proc = mp.Process(target=W.worker_main, args=(child, lib, n, [ROOT, HERE]), daemon=True,
                              name=f"bench-{system}")
            proc.start()
            child.close()
            self.conns[system], self.procs[system] = parent, proc
        for system in list(self.conns):  # the workers import their libraries in parallel
            status, value = self._recv(system, 300)
            if status == "ok":
                self.version[system] = str(value)
            else:
                self.reason[system] = str(value)
                self._stop(system)

    def alive(self, system: str) -> bool:
        return system in self.conns

    def _stop(self, system: str) -> None:
        conn, proc = self.conns.pop(system, None), self.procs.pop(system, None)
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)

    def _recv(self, system: str, timeout: float) -> tuple[str, Any]:
        conn = self.conns[system]
        try:
            if not conn.poll(timeout):
                self.reason[system] = f"worker timed out after {timeout:.0f} s"
                self._stop(system)
                return "na", self.reason[system]
            return conn.recv()
        except (EOFError, OSError):
            code = self.procs[system].exitcode if system in self.procs else None
            self.reason[system] = f"worker process died (exit code {code})"
            self._stop(system)
            return "na", self.reason[system]

    def call(self, system: str, *msg: Any, timeout: float = 600) -> tuple[str, Any]:
        """Sends ``msg`` to the worker of ``system``; returns its ``(status, value)``."""
        if system not in self.conns:
            return "na", self.reason.get(system, "no worker")
        try:
            self.conns[system].send(msg)
        except (OSError, BrokenPipeError):
            self.reason[system] = "worker process died"
            self._stop(system)
            return "na", self.reason[system]
        return self._recv(system, timeout)

    def wait_quiet(self, timeout: float = QUIET_TIMEOUT) -> float:
        """Waits until no thread of any worker process runs (thread pools spin after a call:
        onnxruntime's for ~35 ms of a core, torch's OpenMP and ours for a few ms), so that the next
        sample - of any system - runs alone; returns the seconds waited (``timeout`` at most)."""
        start = time.perf_counter()
        quiet = 0
        while quiet < QUIET_LOOKS and time.perf_counter() - start < timeout:
            running = _running_threads([p.pid for p in self.procs.values()])
            if running is None:  # no /proc (not Linux): a fixed pause instead
                time.sleep(QUIET_FALLBACK)
                break
            quiet = quiet + 1 if running == 0 else 0
            time.sleep(QUIET_POLL)
        return time.perf_counter() - start

    def close(self) -> None:
        for system in list(self.conns):
            self.call(system, "quit", timeout=10)
            self._stop(system)

    def time(self, wid: Any, systems: list[str], rounds: int, budget: float, min_time: float,
             settle: float = 0.0, max_rounds: int = 60) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Per system ``{"median", "min", "samples", "calls_per_sample"}`` (seconds per call), and failures.

        Each worker warms its callable up and calibrates the calls per sample (a sample lasts
        at least ``min_time``).  Then rounds go on until there are ``rounds`` of them and every
        system has ``budget`` seconds of samples (at most ``max_rounds``); in each round the
        systems take turns in a rotating order, one process at a time (optionally after a
        ``settle`` sleep before a slow sample).  A worker makes one untimed call before each
        sample, so every system is timed with its threads awake, back to back.
        """
        failed: dict[str, str] = {}
        numbers: dict[str, int] = {}
        for system in systems:
            status, value = self.call(system, "prepare", wid, min_time, self.quick)
            if status == "ok":
                numbers[system] = int(value)
            else:
                failed[system] = str(value)
        if self.quick:
            settle = min(settle, 0.01)
        samples: dict[str, list[float]] = {k: [] for k in numbers}
        spent = dict.fromkeys(numbers, 0.0)
        r = 0
        while numbers and (r < max(1, rounds) or (min(spent.values()) < budget and r < max_rounds)):
            names = list(numbers)
            k = r % len(names)
            for name in names[k:] + names[:k]:
                if name not in numbers:
                    continue
                if numbers[name] <= 20 and len(names) > 1 and settle > 0:
                    time.sleep(settle)
                self.wait_quiet()
                status, value = self.call(name, "sample", wid, numbers[name])
                if status != "ok":
                    failed[name] = str(value)
                    del numbers[name], spent[name]
                    continue
                per_call, took = value
                samples[name].append(per_call)
                spent[name] += took
            r += 1
        out = {}
        for name, s in samples.items():
            if name in failed or not s:
                continue
            s = sorted(s)
            mid = len(s) // 2
            median = s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])
            out[name] = {"median": median, "min": s[0], "samples": len(s), "calls_per_sample": numbers[name]}
        return out, failed


# --------------------------------------------------------------------------- the suite

Cell = Any  # a float (seconds) or a string: why the system has no time
UNSTABLE = 1.5  # a median above UNSTABLE x the fastest sample marks the cell "~" (disturbed by other processes)


class Unstable(float):
    """A median time whose samples spread widely (median > UNSTABLE x min): printed with a "~"."""


def median_cell(st: dict[str, float]) -> float:
    """The median of ``st`` (Workers.time's stats of one system), as :class:`Unstable` when its samples spread."""
    return Unstable(st["median"]) if st["median"] > UNSTABLE * st["min"] else float(st["median"])


class Suite:
    """Drives the workers section by section and holds the results of one run."""

    def __init__(self, args: argparse.Namespace, np: Any, workers: Workers) -> None:
        self.args, self.np, self.w = args, np, workers
        self.q = args.quick
        self.results: list[dict[str, Any]] = []  # every timed (or failed) cell
        self.chart: list[tuple[str, str, float, bool]] = []  # (workload, reference, ours / reference, unstable)
        self.notes: list[str] = []  # WRONG and failure explanations of the current table
        self.na: dict[tuple[str, str], list[str]] = {}  # (system, reason) -> workloads where it could not run
        self.unstable_seen = False  # the current table has a "~" cell
        self.errors: list[str] = []  # wrong results and failed sections
        self._wid = 0
        self._torch: Any = None

    # -- helpers -------------------------------------------------------------
    def torch(self) -> Any:
        """torch in the parent (to export models and compute references), or None."""
        if self._torch is None and "torch" not in self.args.skip:
            self._torch, _ = R.import_optional("torch")
            if self._torch is not None and self._torch.get_num_threads() != self.args.threads:
                self._torch.set_num_threads(self.args.threads)
        return self._torch

    def timed(self, section: str, workload: str, systems: list[str], spec: dict, ref: Any, tol: float,
              rounds: int, budget: float, min_time: float, settle: float = 0.0) -> dict[str, Cell]:
        """Builds ``workload`` in each system's worker, checks its output against ``ref`` (None: the first
        system's output is the reference), times the good ones interleaved; per system the median
        seconds per call, or "n/a" / "WRONG" (the reason goes into the notes)."""
        np = self.np
        self._wid += 1
        wid = self._wid
        ok: list[str] = []
        cells: dict[str, Cell] = {}
        for system in systems:
            status, value = self.w.call(system, "build", wid, section, spec)
            if status != "ok":
                cells[system] = "n/a"
                why = value if status == "na" else f"failed: {value}"
                self.na.setdefault((system, why), []).append(workload)
                continue
            if value is None:  # a worker with nothing to check (the FMA probe)
                ok.append(system)
                continue
            got = np.asarray(value, dtype=np.float64)
            if ref is None:
                ref = got
            scale = float(np.max(np.abs(ref))) if np.size(ref) else 1.0
            err = float(np.max(np.abs(got - ref))) if got.shape == np.shape(ref) and got.size else float("inf")
            if got.shape != np.shape(ref) or not err <= tol * scale + tol:
                cells[system] = "WRONG"
                msg = (f"{workload} [{system}]: WRONG: shape {got.shape} vs {np.shape(ref)}, max abs error {err:.3g} "
                       f"(max |ref| {scale:.3g}, tolerance {tol:g} relative)")
                self.notes.append(msg)
                self.errors.append(msg)
                continue
            ok.append(system)
        stats, failed = self.w.time(wid, ok, rounds=rounds, budget=budget, min_time=min_time, settle=settle)
        for system in systems:
            self.w.call(system, "drop", wid, timeout=60)
            st = stats.get(system)
            if st:
                cells[system] = median_cell(st)
            elif system in failed:
                cells[system] = "n/a"
                self.notes.append(f"{workload} [{system}]: n/a (timing failed: {failed[system]})")
            self.results.append({"section": section, "workload": workload, "system": system,
                                 **({"seconds_median": st["median"], "seconds_min": st["min"],
                                     "samples": st["samples"], "calls_per_sample": st["calls_per_sample"]}
                                    if st else {"note": cells[system]})})
        return cells

    def ratio(self, cells: dict[str, Cell], ours: str, ref: str, workload: Optional[str] = None) -> str:
        """``ours / ref`` formatted; also adds it to the chart under ``workload`` when given."""
        a, b = cells.get(ours), cells.get(ref)
        if not (isinstance(a, float) and isinstance(b, float)) or b <= 0:
            return "-"
        if workload is not None:
            self.chart.append((workload, ref, a / b, isinstance(a, Unstable) or isinstance(b, Unstable)))
        return f"{a / b:.2f}x"

    def flush_notes(self) -> None:
        """Prints the current table's notes: n/a reasons (one line per system and reason), then the rest."""
        lines = [f"{system}: n/a in {'; '.join(ws)} ({why})" for (system, why), ws in self.na.items()]
        if self.unstable_seen:
            lines.insert(0, f"`~`: unstable — the median is more than {UNSTABLE}x the fastest sample (other "
                            "processes disturbed this system; its ratio is less trustworthy)")
        lines += self.notes
        if lines:
            print()
            for n in lines:
                print(f"- {n}")
        self.notes, self.na, self.unstable_seen = [], {}, False
        print()
        sys.stdout.flush()

    def fmt(self, cell: Cell, how: Callable[[float], str] = H.fmt_time) -> str:
        if not isinstance(cell, float):
            return str(cell)
        if isinstance(cell, Unstable):
            self.unstable_seen = True
            return how(cell) + " ~"
        return how(cell)

    def rounds(self, full: int, quick: int = 3) -> int:
        return quick if self.q else full

    # -- gemm ----------------------------------------------------------------
    def gemm(self) -> None:
        np = self.np
        rows = []
        for n in GEMM_SIZES_QUICK if self.q else GEMM_SIZES:
            rng = np.random.default_rng(n)  # the arrays every worker builds (bench/_workers.py)
            a = rng.uniform(-1, 1, (n, n))
            b = rng.uniform(-1, 1, (n, n))
            ref = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)
            label = f"GEMM {n}"
            t = self.timed("gemm", label, ["ours", "numpy", "torch", "MNN", PEAK], {"n": n}, ref, 1e-4,
                           rounds=self.rounds(7), budget=0.05 if self.q else 0.25,
                           min_time=0.005 if self.q else 0.02)
            gf = lambda s, n=n: f"{2.0 * n ** 3 / s / 1e9:.1f}"  # noqa: E731
            # The probe did as many FLOPs as the product, so the time ratio is the fraction of peak.
            pk = (f"{t[PEAK] / t['ours'] * 100:.0f}%" if all(isinstance(t[s], float) for s in ("ours", PEAK))
                  else "-")
            rows.append([f"{n}", *(self.fmt(t[s], gf) for s in ("ours", "numpy", "torch", "MNN", PEAK)), pk,
                         *(self.ratio(t, "ours", r, label) for r in ("numpy", "torch", "MNN"))])
        print("## GEMM (float32, square, eager; GFLOP/s = 2n³ / median time, higher is better)\n")
        print(H.markdown_table(["n", "ours", "numpy", "torch", "MNN", "peak", "ours % of peak", "ours/numpy",
                                "ours/torch", "ours/MNN"], rows))
        print("\n`peak`: our register-only FMA loop doing 2n³ FLOPs on the same threads, timed interleaved with the "
              "products (so at the clock they ran at); `ours % of peak` = ours / peak.")
        print("\nRatios are time ratios (ours / reference): < 1 means ours is faster.")
        self.flush_notes()

    # -- conv ----------------------------------------------------------------
    def conv(self) -> None:
        import _workers as W

        np = self.np
        torch = self.torch()
        onnx, onnx_why = R.import_optional("onnx")
        rows = []
        for label, cin, cout, hw, k, stride, groups in ([CONV_SHAPES[0], CONV_SHAPES[-1]] if self.q else CONV_SHAPES):
            spec: dict[str, Any] = {"cin": cin, "cout": cout, "hw": hw, "k": k, "stride": stride, "groups": groups}
            x, w, b = W.conv_arrays(np, spec)
            pad = k // 2
            try:
                spec["onnx"] = R.conv_onnx(onnx, np, w, b, x.shape, stride, pad, groups)
            except Exception as e:  # noqa: BLE001
                spec["onnx"], spec["onnx_error"] = None, f"onnx {onnx_why}" if onnx is None else R.short(e)
            if torch is not None:  # the reference: torch in float64
                with torch.no_grad():
                    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                                     torch.from_numpy(b).double(), stride, pad, 1, groups).numpy()
            else:
                ref = None  # no independent reference: the first system's output (a shape check only)
            ho = (hw + 2 * pad - k) // stride + 1
            flops = 2.0 * cout * ho * ho * (cin // groups) * k * k
            name = f"conv {label}"
            t = self.timed("conv", name, ["ours", "torch", "onnxruntime"], spec, ref, 1e-4, rounds=self.rounds(9),
                           budget=0.05 if self.q else 0.4, min_time=0.005 if self.q else 0.02)
            gf = lambda s, flops=flops: f"{flops / s / 1e9:.1f}"  # noqa: E731
            rows.append([label, *(self.fmt(t[s]) for s in ("ours", "torch", "onnxruntime")),
                         *(self.fmt(t[s], gf) for s in ("ours", "torch", "onnxruntime")),
                         self.ratio(t, "ours", "torch", name), self.ratio(t, "ours", "onnxruntime", name)])
        print("## Convolution layers (float32, batch 1, NCHW, with bias; median time per call)\n")
        print(H.markdown_table(["layer", "ours", "torch", "onnxruntime", "ours GFLOP/s", "torch GFLOP/s",
                                "ort GFLOP/s", "ours/torch", "ours/ort"], rows))
        self.flush_notes()

    # -- models --------------------------------------------------------------
    def prepare_model(self, M: Any, tmodel: Any, x: Any, d: str, label: str) -> dict[str, Any]:
        """Writes the files every system needs into ``d``: x.npy, torch weights, ONNX, .mnn, .mnnx.

        Returns the spec the workers build from (a missing file comes with its reason)."""
        torch = self.torch()
        spec: dict[str, Any] = {"name": tmodel.bench_name, "x": os.path.join(d, "x.npy"),
                                "state": os.path.join(d, "state.pt")}
        self.np.save(spec["x"], x)
        torch.save(tmodel.state_dict(), spec["state"])
        prep: dict[str, float] = {}
        onnx_path = os.path.join(d, "model.onnx")
        t0 = time.perf_counter()
        try:
            M.export_onnx(tmodel, torch, tuple(x.shape), onnx_path)
            prep["torch.onnx.export"] = time.perf_counter() - t0
            spec["onnx"] = onnx_path
        except Exception as e:  # noqa: BLE001
            why = f"torch.onnx.export failed: {R.short(e)}"
            spec.update(onnx=None, onnx_error=why, mnn_error=why, mnnx_error=why)
            return spec
        if self.w.alive("MNN"):
            t0 = time.perf_counter()
            try:
                spec["mnn"] = R.convert_mnn(onnx_path, os.path.join(d, "model.mnn"))
                prep["MNN convert"] = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001
                spec["mnn_error"] = R.short(e)
        t0 = time.perf_counter()
        try:
            spec["mnnx"] = R.convert_ours(onnx_path, os.path.join(d, "model.mnnx"), ROOT)
            prep["mnnpy convert"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001
            spec["mnnx_error"] = R.short(e)
        self.notes.append(f"{label}: preparation " + ", ".join(f"{k} {v:.1f} s" for k, v in prep.items()))
        return spec

    def native_check(self, cli: str, mnnx_path: str, x_npy: str, ref: Any, d: str, label: str) -> Optional[str]:
        """None when ``mnnx-run``'s output matches ``ref``, else "WRONG" or "n/a" (with a note)."""
        np = self.np
        try:
            got = R.mnnx_run_output(np, cli, mnnx_path, x_npy, os.path.join(d, "out"), self.args.threads)
        except Exception as e:  # noqa: BLE001
            self.notes.append(f"{label} [ours native]: n/a ({R.short(e)})")
            return "n/a"
        err = float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("inf")
        if err <= MODEL_TOL * float(np.max(np.abs(ref))) + MODEL_TOL:
            return None
        msg = f"{label} [ours native]: WRONG: max abs error {err:.3g} (shape {got.shape})"
        self.notes.append(msg)
        self.errors.append(msg)
        return "WRONG"

    def bench_native(self, cli: str, mnnx_path: str, x_npy: str, runs: int, warmup: int, label: str) -> list[float]:
        """[seconds per run] from one ``mnnx-run --bench``, or [] (with a note) when it fails."""
        self.w.wait_quiet()
        try:
            return [R.mnnx_run_bench(cli, mnnx_path, x_npy, runs, warmup, self.args.threads)]
        except Exception as e:  # noqa: BLE001
            self.notes.append(f"{label} [ours native]: n/a ({R.short(e)})")
            return []

    def models(self) -> None:
        import models as M

        np, torch = self.np, self.torch()
        if torch is None:
            print("## Models\n\nn/a: torch is needed to build and export the models.\n")
            return
        cli, cli_reason = find_cli(self.args)
        work = self.args.workdir or tempfile.mkdtemp(prefix="mnnpy-suite-")
        os.makedirs(work, exist_ok=True)
        rows = []
        try:
            for name in self.args.models:
                tmodel = M.build(name, torch)
                tmodel.bench_name = name
                for batch in self.args.batches:
                    label = f"{M.LABELS[name]} b{batch}"
                    d = os.path.join(work, f"{name}_b{batch}")
                    os.makedirs(d, exist_ok=True)
                    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
                    with torch.no_grad():
                        ref = tmodel(torch.from_numpy(x)).double().numpy()
                    spec = self.prepare_model(M, tmodel, x, d, label)
                    # ours native: output checked once; timed (mnnx-run --bench) before and after the rounds
                    runs, warmup = (5, 2) if self.q else ((15, 3) if batch == 1 else (8, 2))
                    native: list[float] = []
                    mnnx = spec.get("mnnx")
                    native_note = (f"n/a ({cli_reason})" if cli is None else "n/a (no .mnnx: see ours)"
                                   if mnnx is None else self.native_check(cli, mnnx, spec["x"], ref, d, label))
                    if native_note is None:
                        native += self.bench_native(cli, mnnx, spec["x"], runs, warmup, label)
                    t = self.timed("models", label, ["torch", "onnxruntime", "MNN", "ours"], spec, ref, MODEL_TOL,
                                   rounds=self.rounds(9), budget=0.2 if self.q else (1.2 if batch > 1 else 0.8),
                                   min_time=0.005 if self.q else 0.03)
                    if native and not self.q:
                        native += self.bench_native(cli, mnnx, spec["x"], runs, warmup, label)
                    if native:
                        t["ours native"] = sum(native) / len(native)
                        self.results.append({"section": "models", "workload": label, "system": "ours native",
                                             "seconds_median": t["ours native"], "runs": native})
                    else:
                        t["ours native"] = native_note or "n/a"
                    cols = ("torch", "onnxruntime", "MNN", "ours", "ours native")
                    rows.append([label, *(self.fmt(t[s]) for s in cols),
                                 *(self.ratio(t, "ours", r, label) for r in cols[:3]),
                                 *(self.ratio(t, "ours native", r, label + " (mnnx-run)") for r in cols[:3])])
                    sys.stdout.flush()
        finally:
            if self.args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
        print("## Models (float32, 224x224, random weights and BatchNorm statistics; median time per forward)\n")
        print(H.markdown_table(["model", "torch", "onnxruntime", "MNN", "ours", "ours native", "ours/torch",
                                "ours/ort", "ours/MNN", "native/torch", "native/ort", "native/MNN"], rows))
        print("\n`ours` = `mnn_nn.load(m.mnnx)` called under `mnn_expr.lazy_eval(True)` and read (one planned "
              "native call), interleaved with the references; `ours native` = `mnnx-run m.mnnx x.npy --bench N "
              "--warmup W --threads T`, its median (the mean of two runs, before and after the interleaved rounds).")
        self.flush_notes()

    # -- train ---------------------------------------------------------------
    def lenet_state(self) -> str:
        """An .npz of the LeNet-5 weights bench/train.py gives every system (torch's initial ones, seed 0);
        the caller removes it."""
        import train as T  # bench/train.py

        torch = self.torch()
        torch.manual_seed(0)
        state = {k: v.detach().numpy() for k, v in T.torch_model("lenet", torch).state_dict().items()}
        fd, path = tempfile.mkstemp(suffix=".npz", prefix="mnnpy-suite-lenet-")
        os.close(fd)
        self.np.savez(path, **state)
        return path

    def train(self) -> None:
        import train as T  # bench/train.py

        if self.torch() is None:
            print("## Training step\n\nn/a: bench/train.py needs torch (the reference and the initial weights).\n")
            return
        path = self.lenet_state()
        try:
            # ref None: torch's losses of the first steps are the reference for ours (rtol-like 1e-4)
            t = self.timed("train", "LeNet-5 step", ["torch", "ours"], {"model": "lenet", "state": path}, None, 1e-4,
                           rounds=self.rounds(15, 5), budget=0.1 if self.q else 1.0, min_time=T.SAMPLE_TIME)
        finally:
            os.unlink(path)
        ms = lambda s: f"{s * 1e3:.2f}"  # noqa: E731
        print(f"## Training step (LeNet-5, batch {T.BATCH['lenet']}, SGD momentum; median ms per step)\n")
        print(H.markdown_table(["workload", "torch", "ours compiled", "ours/torch"],
                               [["LeNet-5 step", self.fmt(t["torch"], ms), self.fmt(t["ours"], ms),
                                 self.ratio(t, "ours", "torch", "LeNet-5 train step")]]))
        print("\nbench/train.py's systems (forward, cross-entropy, gradients, SGD update); ours = the whole step "
              "`F.compile`d; the first steps' losses checked against torch's.")
        self.flush_notes()

    # -- overhead ------------------------------------------------------------
    def overhead(self) -> None:
        np = self.np
        rows = []
        us = lambda s: f"{s * 1e6:.3f}"  # noqa: E731
        for n in (1, 100):
            rng = np.random.default_rng(n)  # the arrays every worker builds
            a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
            label = f"a + b, n={n}"
            t = self.timed("overhead", label, ["ours", "numpy", "torch", "MNN"], {"n": n},
                           a.astype(np.float64) + b, 1e-6, rounds=self.rounds(9),
                           budget=0.05 if self.q else 0.3, min_time=0.002)
            rows.append([f"`a + b`, {n} element{'s' if n > 1 else ''}",
                         *(self.fmt(t[s], us) for s in ("ours", "numpy", "torch", "MNN")),
                         *(self.ratio(t, "ours", r, label) for r in ("numpy", "torch", "MNN"))])
        print("## Per-op overhead (eager `a + b` on float32, µs per call; bench/ops.py's systems)\n")
        print(H.markdown_table(["op", "ours", "numpy", "torch", "MNN", "ours/numpy", "ours/torch", "ours/MNN"], rows))
        print("\nMNN's `a + b` runs eagerly too (its default mode computes when the op is created).")
        self.flush_notes()


    # -- scaling -------------------------------------------------------------
    def scaling(self) -> None:
        """Ours on the suite's thread count vs on one thread, per workload (the same worker code)."""
        import _workers as W
        import models as M
        import train as T

        n = self.args.threads
        gemm_n = 256 if self.q else 1024
        work: list[tuple[str, str, dict, float]] = [("gemm", f"GEMM {gemm_n}", {"n": gemm_n}, 0.25)]
        for label, cin, cout, hw, k, stride, groups in CONV_SHAPES[:1] if self.q else CONV_SHAPES:
            spec = {"cin": cin, "cout": cout, "hw": hw, "k": k, "stride": stride, "groups": groups}
            W.conv_arrays(self.np, spec)  # (each worker builds the same arrays from the spec)
            work.append(("conv", f"conv {label}", spec, 0.4))
        tmp = tempfile.mkdtemp(prefix="mnnpy-suite-scaling-")
        rows = []
        try:
            torch = self.torch()
            if torch is not None:
                for name in ([] if self.q else self.args.models):
                    tmodel = M.build(name, torch)
                    tmodel.bench_name = name
                    x = self.np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(self.np.float32)
                    d = os.path.join(tmp, name)
                    os.makedirs(d)
                    spec = self.prepare_model(M, tmodel, x, d, f"{M.LABELS[name]} b1 (scaling)")
                    if spec.get("mnnx"):
                        work.append(("models", f"{M.LABELS[name]} b1", spec, 0.8))
                work.append(("train", "LeNet-5 step", {"model": "lenet", "state": self.lenet_state()}, 1.0))
            for section, label, spec, budget in work:
                min_time = T.SAMPLE_TIME if section == "train" else 0.02
                t = self.timed(section, label, [ONE_THREAD, "ours"], spec, None, MODEL_TOL,
                               rounds=self.rounds(7), budget=0.05 if self.q else budget,
                               min_time=0.005 if self.q else min_time)
                speedup = (f"{t[ONE_THREAD] / t['ours']:.2f}x"
                           if all(isinstance(t[s], float) for s in (ONE_THREAD, "ours")) else "-")
                rows.append([label, self.fmt(t[ONE_THREAD]), self.fmt(t["ours"]), speedup])
        finally:
            for _, _, spec, _ in work:
                if spec.get("model") == "lenet":
                    os.unlink(spec["state"])
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"## Thread scaling (ours: 1 thread vs {n}; median time per call)\n")
        print(H.markdown_table(["workload", "1 thread", f"{n} threads", "speedup"], rows))
        print(f"\nThe same workloads as above (models: `mnn_nn.load` of the converted model, lazily), timed in two "
              f"workers of ours interleaved, one on 1 thread and one on {n}; outputs checked against each other.")
        self.flush_notes()


def run_sections(suite: Suite, args: argparse.Namespace, info: dict[str, Any], failed: list[str]) -> None:
    """Runs the chosen sections in order; a section that raises is reported and the next one runs."""
    for section in SECTIONS:
        if section not in args.sections:
            continue
        t0 = time.perf_counter()
        try:
            getattr(suite, section)()
        except Exception as e:  # noqa: BLE001  (report the section, run the next)
            import traceback

            suite.notes, suite.na, suite.unstable_seen = [], {}, False
            failed.append(section)
            print(f"## {section}\n\nsection failed: {R.short(e, 400)}\n")
            traceback.print_exc(limit=4)
            print()
        info.setdefault("section_seconds", {})[section] = round(time.perf_counter() - t0, 1)
        sys.stdout.flush()


def find_cli(args: argparse.Namespace) -> tuple[Optional[str], str]:
    """(path of mnnx-run, "") or (None, why not)."""
    if args.mnnx_run:
        if os.path.isfile(args.mnnx_run) and os.access(args.mnnx_run, os.X_OK):
            return os.path.abspath(args.mnnx_run), ""
        return None, f"--mnnx-run {args.mnnx_run}: not an executable file"
    try:
        import mnn_nn

        return mnn_nn.deploy.runtime_cli(), ""
    except Exception as e:  # noqa: BLE001
        return None, R.short(e, 120)


# --------------------------------------------------------------------------- chart

def save_chart(path: str, entries: list[tuple], title: str) -> str:
    """Horizontal bar chart (log scale) of ours / reference per workload, one bar per reference.

    ``entries``: ``(workload, reference, ratio[, unstable])``; unstable ratios are drawn hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [(*e[:3], bool(e[3]) if len(e) > 3 else False) for e in entries]
    workloads: list[str] = []
    for w, _, _, _ in entries:
        if w not in workloads:
            workloads.append(w)
    refs = [r for r in REFERENCES if any(e[1] == r for e in entries)]
    colors = {"numpy": "#4c72b0", "torch": "#dd8452", "onnxruntime": "#55a868", "MNN": "#c44e52"}
    height = 0.8 / max(1, len(refs))
    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(workloads) + 1.6))
    for i, ref in enumerate(refs):
        ys, vals, shaky = [], [], []
        for w, r, v, u in entries:
            if r == ref:
                ys.append(workloads.index(w) + (i - (len(refs) - 1) / 2) * height)
                vals.append(v)
                shaky.append(u)
        # bars grow from parity (1.0) towards the ratio: right = ours slower, left = ours faster
        bars = ax.barh(ys, [v - 1.0 for v in vals], height=height, left=1.0, color=colors.get(ref), label=f"vs {ref}")
        for bar, u in zip(bars, shaky):
            if u:
                bar.set_hatch("////")
                bar.set_alpha(0.55)
        for y, v in zip(ys, vals):
            ax.text(v * (1.04 if v >= 1 else 0.96), y, f"{v:.2f}", va="center", ha="left" if v >= 1 else "right",
                    fontsize=5.5)
    ax.set_xscale("log")
    lo = min(e[2] for e in entries)
    hi = max(e[2] for e in entries)
    ax.set_xlim(min(0.5, lo / 1.6), max(2.0, hi * 1.6))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ours / reference time (log scale; < 1 = ours faster; hatched = unstable timing)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- main

def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    H.prepare_process(args.threads)  # may re-exec; sets OPENBLAS_NUM_THREADS before numpy loads
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # the checkout's packages
    socket.setdefaulttimeout(5.0)  # nothing here should use the network; never hang on a socket if something does
    waited = wait_idle(args.wait_idle) if args.wait_idle > 0 else None
    start = time.perf_counter()
    machine0, own0 = busy_seconds(), own_seconds()

    import numpy as np

    needed = {"gemm": ("ours", "numpy", "torch", "MNN", PEAK), "conv": ("ours", "torch", "onnxruntime"),
              "models": ("torch", "onnxruntime", "MNN", "ours"), "train": ("torch", "ours"),
              "overhead": ("ours", "numpy", "torch", "MNN"), "scaling": ("ours", ONE_THREAD, "torch")}
    systems = [s for s in ("ours", ONE_THREAD, PEAK, "numpy", "torch", "onnxruntime", "MNN")
               if any(s in needed[sec] for sec in args.sections)]
    workers = Workers(systems, args.threads, args.quick, args.skip)
    blas = H.limit_blas_threads(args.threads)  # the parent's numpy only computes references
    versions: dict[str, str] = {}
    for system in ("numpy", "torch", "onnxruntime", "MNN", "ours"):
        if system in workers.version:
            versions[system if system != "ours" else "mnn_expr"] = workers.version[system]
        elif system in workers.reason:
            versions[system if system != "ours" else "mnn_expr"] = f"n/a ({workers.reason[system]})"
    _, versions["onnx"] = R.import_optional("onnx")
    cli, why = find_cli(args)
    versions["mnnx-run"] = cli or f"n/a ({why})"
    mpl, versions["matplotlib"] = R.import_optional("matplotlib")
    _, versions["threadpoolctl"] = R.import_optional("threadpoolctl")

    info = H.machine_info(args.threads, versions, blas, repo=ROOT)
    peak, peak_text = peak_estimate(args.threads)
    info["peak_estimate_gflops"], info["peak_estimate"] = peak, peak_text
    H.print_header(info, "mnnpy benchmark suite" + (" (--quick)" if args.quick else ""))
    print(f"- peak float32 estimate: {peak_text}; the GEMM table's \"% of peak\" uses the same loop timed beside "
          "each product (its `peak` column)")
    try:
        print(f"- load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    busy = cpu_busy(1.0)
    if busy is not None:
        info["cpus_busy_start"], info["cpus_stolen_start"] = busy
        print(f"- other processes right now: {busy[0]:.2f} of {os.cpu_count()} CPUs busy, {busy[1]:.2f} stolen by the "
              f"hypervisor (1 s sample){f'; --wait-idle: {waited}' if waited else ''}")
    print(f"- sections: {', '.join(args.sections)}; each system runs in its own worker process, "
          f"{args.threads} thread(s) each: torch.set_num_threads, onnxruntime intra_op_num_threads (inter-op 1), "
          f"MNN set_thread_number / thread_num, numpy's BLAS via {blas.via}, mnn_expr.set_thread_number, "
          f"mnnx-run --threads")
    for system, why in workers.reason.items():
        print(f"- n/a: {system}: {why}")
    print()
    warning = H.warn_if_loaded()
    if warning:
        print(f"> {warning}\n")
    sys.stdout.flush()

    suite = Suite(args, np, workers)
    failed: list[str] = []
    try:
        run_sections(suite, args, info, failed)
    finally:
        workers.close()

    if args.chart and suite.chart:
        if mpl is None:
            print(f"chart: n/a (matplotlib {versions['matplotlib']})")
        else:
            try:
                title = (f"mnnpy / reference time, {args.threads} threads — {info['cpu']}"
                         + (" (--quick)" if args.quick else ""))
                print(f"chart: wrote {save_chart(args.chart, suite.chart, title)}")
            except Exception as e:  # noqa: BLE001
                print(f"chart: failed ({R.short(e)})")
    total = time.perf_counter() - start
    busy = cpu_busy(1.0)
    if busy is not None:
        info["cpus_busy_end"], info["cpus_stolen_end"] = busy
        print(f"other processes at the end: {busy[0]:.2f} CPUs busy, {busy[1]:.2f} stolen (1 s sample).")
    machine1, own1 = busy_seconds(), own_seconds()
    if machine0 is not None and machine1 is not None:
        others = max(0.0, (machine1 - machine0) - (own1 - own0))
        info["other_cpu_seconds"] = others
        print(f"Other processes used {others:.0f} CPU-seconds during the run: {others / total:.2f} CPUs on average "
              f"(0 on an idle machine; anything near 1 makes 2-thread timings unreliable).")
    load_end = H.load_average()
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in info.get("section_seconds", {}).items())
    print(f"Ran in {total:.1f} s ({secs}); load average (1 min) at the end: "
          f"{'?' if load_end is None else f'{load_end:.2f}'}.")
    if info.get("other_cpu_seconds") is not None and info["other_cpu_seconds"] / max(total, 1e-9) > BUSY_WARN:
        # the load average at the end counts this run's own threads: other processes' CPU time says more
        print(f"> WARNING: other processes used {info['other_cpu_seconds'] / total:.2f} CPUs on average during the "
              f"run (> {BUSY_WARN}): timings, especially multi-threaded ones, are unreliable; rerun when it is idle.")
    if args.json:
        info["load_1min_end"] = load_end
        H.write_json(args.json, {"machine": info, "args": vars(args), "results": suite.results,
                                 "ratios": [{"workload": w, "reference": r, "ours_over_reference": v, "unstable": u}
                                            for w, r, v, u in suite.chart],
                                 "errors": suite.errors, "failed_sections": failed})
        print(f"wrote {args.json}")
    return 1 if (failed or suite.errors) else 0


if __name__ == "__main__":
    sys.exit(main())
