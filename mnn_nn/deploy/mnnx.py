"""Our model format, ``.mnnx`` (docs/format.md): export a Module or function, load it back.

The file is read and run by the native runtime: the same one behind the ``mnnx-run`` CLI
and the C++ API in ``native/include/mnn/runtime.h``, so what runs here runs where there is
no Python.

>>> import os, tempfile, numpy as np, mnn_expr as F, mnn_nn as nn
>>> path = os.path.join(tempfile.mkdtemp(), "lin.mnnx")
>>> lin = nn.Linear(3, 2)
>>> export(lin, [F.ones((4, 3))], path, dynamic_axes={"input0": [0]})
>>> m = load(path)
>>> bool(np.allclose(m(F.ones((5, 3))).numpy(), lin(F.ones((5, 3))).numpy()))
True

MNN's spellings work on the format too: ``mnn_expr.save(vars, path)`` writes the graph that
computes ``vars`` from the placeholders it reads, ``load_as_list`` / ``load_as_dict`` give its
Vars back, and ``mnn_nn.load_module_from_file(path, inputs, outputs)`` a module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np
from mnn_expr._native import Var

import mnn_expr as F
from mnn_expr import _native

from .graph import Graph, graph_of, trace

__all__ = ["export", "export_training_step", "save_graph", "load", "LoadedModel", "runtime_cli", "save",
           "load_as_list", "load_as_dict", "load_module_from_file"]

_PathLike = Union[str, "os.PathLike[str]"]
_WEIGHTS = ("float32", "float16", "int8")


def _producer() -> str:
    try:
        from importlib.metadata import version
        return f"mnnpy {version('mnnpy')}"
    except Exception:  # not installed as a distribution (a source checkout)
        return "mnnpy"


def save_graph(g: Graph, path: _PathLike, *, weights: str = "float32",
               metadata: Optional[dict] = None) -> None:
    """Writes a traced :class:`~mnn_nn.export.graph.Graph` as an ``.mnnx`` file.

    ``weights``: how float32 constants of at least 2 dims (weight matrices and filters) are
    stored: ``"float32"``, ``"float16"`` or ``"int8"`` (symmetric, one scale per output channel);
    they are widened back to float32 when the file is loaded.
    """
    if weights not in _WEIGHTS:
        raise ValueError(f"export: weights must be one of {_WEIGHTS}, got {weights!r}")
    states = set(g.states)
    constants = []
    for i, arr in g.constants.items():
        v = g.values[i]
        enc = "raw"
        if weights != "float32" and v.dtype == "float32" and len(v.shape) >= 2 and i not in states:
            enc = weights
        constants.append((i, F.array(np.require(arr, requirements="C"), dtype=v.dtype), enc))
    values = [(v.name, v.dtype, [-1 if d is None else int(d) for d in v.shape]) for v in g.values]
    nodes = [(n.op, dict(n.attrs), list(n.inputs), list(n.outputs)) for n in g.nodes]
    meta = [(str(k), str(val)) for k, val in (metadata or {}).items()]
    _native.mnnx_save(os.fspath(path), _producer(), meta, values, list(g.inputs), list(g.outputs), constants,
                      sorted(g.states.items()), nodes)


def export(model: Union[Callable, Any], example_inputs: Any, path: _PathLike, *,
           input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None,
           dynamic_axes: Optional[dict] = None, weights: str = "float32", metadata: Optional[dict] = None,
           optimize: bool = True) -> None:
    """Traces ``model`` (a Module, in its current train/eval mode, or a function of Vars) on
    ``example_inputs`` and writes it to ``path`` as ``.mnnx``.

    ``dynamic_axes``: ``{input_name: [axis, ...]}`` for dims that may change size (e.g. the
    batch); inputs are named ``input0, input1, ...`` unless ``input_names`` is given.
    ``weights``: ``"float32"`` (default), ``"float16"`` or ``"int8"`` storage (see :func:`save_graph`).
    ``optimize``: run the inference passes of :mod:`~mnn_nn.deploy.graph_passes` (constant folding,
    per-channel affine ops such as an eval-mode BatchNorm folded into the preceding convolution,
    dead code); results may then differ from the model's in the last float32 bits.
    """
    g = trace(model, example_inputs, input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes)
    if optimize:
        from .graph_passes import optimize as run_passes
        run_passes(g)
    save_graph(g, path, weights=weights, metadata=metadata)


def export_training_step(step: Callable, example_inputs: Any, path: _PathLike, *, state: Any,
                         input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None,
                         metadata: Optional[dict] = None) -> None:
    """Exports a whole training step (forward, gradients, optimizer update) as an ``.mnnx`` file
    that updates its own weights on every run (MNN's "static training graph"): the runtime, or
    ``mnnx-run --steps N``, trains without Python.

    ``step(*example_inputs)`` returns the outputs (e.g. the loss); ``state``: the Modules and
    optimizers whose Vars it reads and updates, as for :func:`mnn_expr.compile`.  Their current
    values become the file's initial state; each run's new parameter and optimizer-state values
    are extra outputs (named ``new:<name>``) that replace the state for the next run.

    >>> import os, tempfile, mnn_expr as F, mnn_nn as nn, mnn_optim as optim
    >>> lin = nn.Linear(2, 1); opt = optim.SGD(lin.parameters(), lr=0.1)
    >>> def step(x, y):
    ...     loss = ((lin(x) - y) ** 2).mean()
    ...     opt.step(loss)
    ...     return loss
    >>> path = os.path.join(tempfile.mkdtemp(), "step.mnnx")
    >>> export_training_step(step, [F.ones((4, 2)), F.zeros((4, 1))], path, state=[lin, opt])
    >>> m = load(path)
    >>> losses = [m(F.ones((4, 2)), F.zeros((4, 1)))[0].item() for _ in range(3)]
    >>> losses[2] < losses[1] < losses[0]
    True
    """
    from .graph import _as_inputs, _flatten_outputs, build_graph

    inputs = _as_inputs(example_inputs)
    arg_names = list(input_names) if input_names is not None else [f"input{i}" for i in range(len(inputs))]
    if len(arg_names) != len(inputs):
        raise ValueError(f"export: {len(arg_names)} input names given for {len(inputs)} inputs")
    prog, st = _trace_step(step, inputs, state)
    missing = [(opt, i, k, new) for opt, new_states in zip(st.optimizers, prog.new_opt_states)
               for i, new_st in enumerate(new_states) for k, new in new_st.items()
               if k not in opt._states[i] and isinstance(new, (Var, int, float))]
    saved = [list(opt._states) for opt in st.optimizers]
    try:
        if missing:
            # The file runs the optimizer's steady-state update, so state it creates on its first step
            # (momentum buffers, Adam's moments) starts as zeros; checked to give the same first step.
            first = _new_values(prog, st, inputs)
            for opt in st.optimizers:
                opt._states = [dict(s) for s in opt._states]
            for opt, i, k, new in missing:
                opt._states[i][k] = F.zeros(new.shape, new.dtype) if isinstance(new, Var) else type(new)(0)
            prog, st = _trace_step(step, inputs, state)
            for a, b in zip(first, _new_values(prog, st, inputs)):
                if not np.allclose(a, b, rtol=1e-5, atol=1e-7):
                    raise ValueError("export: the optimizer's first step differs from its update with zero-initialised "
                                     "state; run one step before exporting")
        outs, keys = _flatten_outputs(_unflatten_outputs(prog), output_names)
        entries = [(ph, name, h.numpy(), new)  # (placeholder, name, current value, traced new value or None)
                   for (name, h), ph, new in zip(st.handles, prog.handle_phs, prog.new_handles)]
        for (j, i, k), v in st.opt_vars():
            name, new = f"opt{j}.state[{i}].{k}", prog.new_opt_states[j][i].get(k)
            value = v.numpy() if isinstance(v, Var) else np.asarray(v, np.int64 if isinstance(v, int) else np.float64)
            entries.append((prog.opt_phs[(j, i, k)], name, value, new if isinstance(new, Var) else None))
    finally:
        for opt, states in zip(st.optimizers, saved):
            opt._states = states
    phs, names, values, news = (list(col) for col in zip(*entries)) if entries else ([], [], [], [])
    new_keys = [f"new:{n}" for n, new in zip(names, news) if new is not None]
    g = build_graph(outs + [new for new in news if new is not None], keys + new_keys, list(prog.inputs) + phs,
               arg_names + names, {})
    n_args = len(prog.inputs)
    out_of = dict(zip(keys + new_keys, g.outputs))
    for ph_index, name, value, new in zip(g.inputs[n_args:], names, values, news):
        g.constants[ph_index] = np.asarray(value)
        if new is not None:
            g.states[ph_index] = out_of[f"new:{name}"]
    g.inputs = g.inputs[:n_args]
    save_graph(g, path, metadata={"kind": "training step", **(metadata or {})})


def _trace_step(step: Callable, inputs: list, state: Any) -> tuple:
    """Traces a training step as F.compile does: (the program, its state)."""
    from mnn_expr.compile import Compiled
    compiled = Compiled(step, state)
    _, spec, leaves, st, _ = compiled._signature(tuple(inputs), {})
    return compiled._trace(spec, leaves, st), st


def _new_values(prog: Any, st: Any, inputs: list) -> list:
    """The new parameter values of one traced step on the current values (nothing is rebound)."""
    for (_, h), ph in zip(st.handles, prog.handle_phs):
        ph._write_var(h)
    for key, v in st.opt_vars():
        if isinstance(v, Var):
            prog.opt_phs[key]._write_var(v)
        else:
            prog.opt_phs[key]._write(np.asarray(v, np.int64 if isinstance(v, int) else np.float64))
    for ph, v in zip(prog.inputs, inputs):
        ph._write_var(v)
    return [new.numpy() for new in prog.new_handles if new is not None]


def _unflatten_outputs(prog: Any) -> Any:
    from mnn_expr.compile import _unflatten
    return _unflatten(prog.out_spec, prog.outputs, [0])


class LoadedModel:
    """An ``.mnnx`` model loaded for running: call it with Vars or arrays (positionally, in the
    declared order, or by input name); it returns a Var, or a list of Vars for several outputs.
    Called on values (no input requires gradients or reads a placeholder) it runs at once, in any
    mode, through the plan it prepared for those input shapes (as ``mnnx-run`` and MNN's loaded
    modules do); otherwise it records its ops in the current mode: eagerly, lazily (one planned
    native call when read), or inside :func:`mnn_expr.compile` (gradients flow through it).

    ``inputs`` / ``outputs``: ``(name, dtype, shape)`` with ``None`` for dynamic dims.
    """

    def __init__(self, path: _PathLike, threads: Optional[int] = None) -> None:
        self._model = _native.MnnxModel(os.fspath(path))
        if threads is not None:
            F.set_thread_number(int(threads))
        self.inputs = [(n, dt, tuple(None if d < 0 else d for d in s)) for n, dt, s in self._model.inputs]
        self.outputs = [(n, dt, tuple(None if d < 0 else d for d in s)) for n, dt, s in self._model.outputs]
        self.producer: str = self._model.producer
        self.metadata: dict = dict(self._model.metadata)

    @property
    def input_names(self) -> list:
        return [n for n, _, _ in self.inputs]

    @property
    def output_names(self) -> list:
        return [n for n, _, _ in self.outputs]

    def run(self, *args: Any, **kwargs: Any) -> list:
        """Runs the model; always returns the list of outputs."""
        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"model: takes {len(names)} inputs ({names}), got {len(args)}")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"model: unknown input {k!r} (inputs: {names})")
            if k in given:
                raise TypeError(f"model: input {k!r} given twice")
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise TypeError(f"model: missing inputs {missing}")
        return self._model.run([given[n] if isinstance(given[n], Var) else F.asarray(given[n]) for n in names])

    def __call__(self, *args: Any, **kwargs: Any) -> Union[Var, list]:
        outs = self.run(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs

    def forward(self, *args: Any) -> Union[Var, list]:
        """MNN's spelling: ``forward(x)`` or ``forward([x, y])`` (then returns a list)."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            return self.run(*args[0])
        return self(*args)

    onForward = forward  # noqa: N815  (MNN's name)

    def get_info(self) -> dict:
        """MNN's ``get_info()``: the input and output names, and placeholders for the inputs."""
        return {"version": self.producer, "inputNames": self.input_names, "outputNames": self.output_names,
                "inputs": [F.placeholder([1 if d is None else d for d in s], dt, name=n) for n, dt, s in self.inputs]}

    @property
    def states(self) -> list:
        """The current values of the model's state (the weights of an exported training step)."""
        return self._model.states

    def __repr__(self) -> str:
        fmt = ", ".join(f"{n}: {dt}{list(s)}" for n, dt, s in self.inputs)
        return f"LoadedModel({fmt}) -> {self.output_names}"


def load(path: _PathLike, threads: Optional[int] = None) -> LoadedModel:
    """Loads an ``.mnnx`` file (validating it: a malformed file raises ``ValueError``).

    ``threads``: sets the worker thread count (``mnn_expr.set_thread_number``)."""
    return LoadedModel(path, threads)


def runtime_cli() -> str:
    """The path of the ``mnnx-run`` CLI: on ``PATH`` after ``pip install``, else in a CMake build
    folder of this checkout (``build/*/mnnx-run``).  Raises FileNotFoundError saying how to build it."""
    import glob
    import shutil
    found = shutil.which("mnnx-run")
    if found:
        return found
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    built = sorted(glob.glob(os.path.join(root, "build", "*", "mnnx-run")), key=os.path.getmtime, reverse=True)
    built = [b for b in built if _runs_here(b)]  # (not a cross build for another CPU)
    if built:
        return built[0]
    raise FileNotFoundError("mnnx-run was not found: `pip install .` puts it on PATH; or build it alone with "
                            "`cmake -S . -B build/rt -DMNN_BUILD_TOOLS=ON && cmake --build build/rt --target mnnx-run`")


_ELF_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183}


def _runs_here(path: str) -> bool:
    """False for an ELF executable built for another CPU than this one (a cross build)."""
    import platform
    want = _ELF_MACHINES.get(platform.machine().lower())
    with open(path, "rb") as f:
        head = f.read(20)
    if want is None or len(head) < 20 or head[:4] != b"\x7fELF":
        return True
    return int.from_bytes(head[18:20], "little") == want


# ---- MNN's spellings ----------------------------------------------------------------------------

def save(vars: Sequence[Var], path: _PathLike, forInference: bool = True) -> None:  # noqa: A002, N803 (MNN's names)
    """MNN's ``expr.save(vars, fileName)``: writes the graph computing ``vars`` from the
    placeholders they read (computed Vars, e.g. ``model.parameters``, are stored as they are).
    Vars are named by their ``name`` (else ``output<i>``)."""
    vs = [vars] if isinstance(vars, Var) else list(vars)
    names, used = [], set()
    for i, v in enumerate(vs):
        n = v.name or f"output{i}"
        if n in used:
            n = f"{n}_{i}"
        used.add(n)
        names.append(n)
    save_graph(graph_of(vs, names), path)


def load_as_list(path: _PathLike) -> list:
    """MNN's ``load_as_list``: the file's outputs as Vars; a file with inputs gives Vars that
    are computed from placeholders for them (write the placeholders, then read)."""
    return list(load_as_dict(path).values())


def load_as_dict(path: _PathLike) -> dict:
    """MNN's ``load_as_dict``: ``{name: Var}`` for the inputs (placeholders) and the outputs."""
    m = LoadedModel(path)
    phs = {n: F.placeholder([1 if d is None else d for d in s], dt, name=n) for n, dt, s in m.inputs}
    with F.lazy_eval(True):
        outs = m.run(*phs.values())
    result = dict(phs)
    for (n, _, _), v in zip(m.outputs, outs):
        v.name = n
        result[n] = v
    return result


def load_module_from_file(file_name: _PathLike, input_names: Optional[Sequence[str]] = None,
                          output_names: Optional[Sequence[str]] = None, **kwargs: Any) -> LoadedModel:
    """MNN's ``nn.load_module_from_file(file, input_names, output_names, thread_num=...)``: a
    module whose ``forward`` runs the file.  The names must match the file's (when given)."""
    m = LoadedModel(file_name, kwargs.get("thread_num"))
    for what, want, have in (("input", input_names, m.input_names), ("output", output_names, m.output_names)):
        if want is not None and list(want) != have:
            raise ValueError(f"load_module_from_file: {what} names {list(want)} do not match the file's {have}")
    return m
