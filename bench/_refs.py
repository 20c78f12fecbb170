"""Adapters for the reference systems that bench/suite.py runs beside mnnpy.

Each function either returns what the suite needs (a session, a converted file, a timing) or
raises :class:`Unavailable` with a one-line reason that the suite prints as ``n/a (reason)``.
Nothing here imports numpy at module level (``_harness`` rules: the suite sets thread
variables before numpy loads); numpy, onnx and the engines are passed in or imported lazily.

MNN's wheel (``pip install MNN``) needs care:

- its ``MNN.tools`` package (the ``mnnconvert`` / ``mnnquant`` command wrappers) imports a
  usage logger that tries to ``pip install`` a cloud SDK and opens a URL without a timeout,
  so it is never imported here: the converter is the extension function
  ``_tools.mnnconvert(argv)``, run in a subprocess (with a timeout) whose working directory
  is a fresh folder, because the converter writes a fixed-name scratch file into the current
  directory;
- ``import MNN`` prints a line about the CPU to the C-level stdout: :func:`import_mnn` hides it.

>>> r = Unavailable("not installed")
>>> str(r)
'not installed'
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from typing import Any, Iterator, Optional

CONVERT_TIMEOUT = 600  # seconds for one model conversion (ours or MNN's)


class Unavailable(RuntimeError):
    """A reference system (or one of its steps) cannot run here; the message says why."""


def short(e: BaseException, limit: int = 160) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    text = " ".join(f"{type(e).__name__}: {e}".split()) if not isinstance(e, Unavailable) else " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Sends the C-level stdout and stderr (file descriptors 1 and 2) to /dev/null inside the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# --------------------------------------------------------------------------- imports

def import_optional(name: str) -> tuple[Optional[Any], str]:
    """``(module, version)``, or ``(None, "not installed: ...")`` when the import fails."""
    try:
        mod = __import__(name)
    except Exception as e:  # noqa: BLE001  (ImportError, or a broken install raising something else)
        return None, f"not installed ({short(e, 100)})"
    return mod, str(getattr(mod, "__version__", "?"))


def import_mnn(threads: int) -> tuple[Optional[Any], str]:
    """MNN's Python package (never its ``tools`` subpackage), thread count set; or ``(None, reason)``."""
    try:
        with quiet_fds():
            import MNN
            import MNN.expr
            import MNN.nn  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return None, f"not installed ({short(e, 100)})"
    MNN.expr.set_thread_number(int(threads))
    version = MNN.version() if hasattr(MNN, "version") else "?"
    return MNN, str(version)


# --------------------------------------------------------------------------- onnxruntime

def ort_session(ort: Any, model: Any, threads: int) -> Any:
    """An onnxruntime CPU session of ``model`` (a path or serialized bytes): ``threads`` intra-op
    threads, 1 inter-op thread, sequential execution, all graph optimisations."""
    if ort is None:
        raise Unavailable("onnxruntime not installed")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def conv_onnx(onnx: Any, np: Any, w: Any, b: Any, x_shape: tuple, stride: int, pad: int, groups: int) -> bytes:
    """A one-node ONNX model ``y = Conv(x, w, b)`` (opset 17), serialized; ``w`` and ``b`` are initializers."""
    if onnx is None:
        raise Unavailable("onnx not installed (needed to build the one-node model)")
    from onnx import TensorProto, helper, numpy_helper

    k = int(w.shape[2])
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, group=groups)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ascontiguousarray(w), "w"),
                               numpy_helper.from_array(np.ascontiguousarray(b), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# --------------------------------------------------------------------------- conversions

def _run(cmd: list[str], cwd: Optional[str] = None, timeout: float = CONVERT_TIMEOUT) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`{os.path.basename(cmd[0])}` timed out after {timeout:.0f} s") from None


def _tail(text: str, lines: int = 2) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def convert_ours(onnx_path: str, out_path: str, root: str) -> str:
    """``python3 -m mnn_nn.deploy.cli convert onnx_path out_path``, run in ``root`` (the checkout)."""
    r = _run([sys.executable, "-m", "mnn_nn.deploy.cli", "convert", os.path.abspath(onnx_path),
              os.path.abspath(out_path)], cwd=root)
    if r.returncode != 0 or not os.path.exists(out_path):
        raise Unavailable(f"mnnpy convert failed (exit {r.returncode}): {_tail(r.stderr or r.stdout)}")
    return out_path


def convert_mnn(onnx_path: str, out_path: str) -> str:
    """MNN's ONNX -> .mnn converter: ``_tools.mnnconvert([...])`` in a subprocess, in its own scratch folder.

    The folder is ``<out_path>.convert/`` (the converter leaves a fixed-name scratch file in its
    working directory; two conversions sharing one can silently produce a model of zeros)."""
    work = out_path + ".convert"
    os.makedirs(work, exist_ok=True)
    code = ("import sys, _tools; ok = _tools.mnnconvert(['mnnconvert', '-f', 'ONNX', '--modelFile', sys.argv[1], "
            "'--MNNModel', sys.argv[2], '--bizCode', 'mnnpy-bench']); sys.exit(0 if ok in (True, 0, None) else 1)")
    r = _run([sys.executable, "-c", code, os.path.abspath(onnx_path), os.path.abspath(out_path)], cwd=work)
    if r.returncode != 0 or not os.path.exists(out_path) or os.path.getsize(out_path) == 0:
        raise Unavailable(f"MNN converter failed (exit {r.returncode}): {_tail(r.stderr or r.stdout)}")
    return out_path


# --------------------------------------------------------------------------- runtimes

def mnn_module(MNN: Any, path: str, threads: int) -> Any:
    """A loaded MNN Module (``MNN.nn.load_module_from_file``) with input ``x`` and output ``y``."""
    if MNN is None:
        raise Unavailable("MNN not installed")
    with quiet_fds():
        return MNN.nn.load_module_from_file(path, ["x"], ["y"], thread_num=int(threads))


def mnn_const(MNN: Any, a: Any) -> Any:
    """An MNN constant Var holding ``a`` (NCHW layout)."""
    F = MNN.expr
    return F.const(a, list(a.shape), F.NCHW)


def mnn_read(np: Any, v: Any) -> Any:
    """A copy of an MNN Var's data (``Var.read()`` returns a view that does not keep its buffer alive)."""
    return np.array(v.read(), copy=True)


_MEDIAN = re.compile(r"median\s+([0-9.]+)\s*(ms|s|us|µs)")


def mnnx_run_bench(cli: str, model: str, x_npy: str, runs: int, warmup: int, threads: int,
                   timeout: float = 600) -> float:
    """Seconds per run: the median that ``mnnx-run MODEL X --bench runs --warmup W --threads T`` prints."""
    r = _run([cli, model, x_npy, "--bench", str(runs), "--warmup", str(warmup), "--threads", str(threads)],
             timeout=timeout)
    out = r.stdout + r.stderr
    m = _MEDIAN.search(out)
    if r.returncode != 0 or not m:
        raise Unavailable(f"mnnx-run failed (exit {r.returncode}): {_tail(out)}")
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}[m.group(2)]
    return float(m.group(1)) * scale


def mnnx_run_output(np: Any, cli: str, model: str, x_npy: str, out_dir: str, threads: int) -> Any:
    """The output ``y`` that ``mnnx-run`` computes (``--save out_dir``), as a numpy array."""
    os.makedirs(out_dir, exist_ok=True)
    r = _run([cli, model, x_npy, "--save", out_dir, "--threads", str(threads)], timeout=300)
    path = os.path.join(out_dir, "y.npy")
    if r.returncode != 0 or not os.path.exists(path):
        raise Unavailable(f"mnnx-run --save failed (exit {r.returncode}): {_tail(r.stdout + r.stderr)}")
    return np.load(path)
