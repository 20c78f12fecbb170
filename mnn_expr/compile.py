"""``compile(fn)``: trace a function once per input signature, then run it natively in one call.

The first call with a new signature (the nesting of the arguments, each Var's shape and
dtype, the other arguments' values) *traces* ``fn``: it runs with a placeholder in place
of every Var argument, in lazy mode, so nothing is computed and the result is the graph
of the whole function.  Later calls with that signature write the arguments into the
placeholders and compute every output in one native call (the lazy executor's cached
plan: one schedule, fused elementwise passes), skipping Python entirely.

State: Vars that ``fn`` reads from outside (a model's parameters) would be frozen into the
trace as constants.  Pass the objects that own them as ``state`` (Modules, optimizers,
Vars, or lists of them): their Vars become inputs of the program too, and when ``fn``
updates them (an optimizer step rebinding the parameters, new momentum buffers) the
compiled program computes the new values and rebinds them after each call, so a whole
training step compiles.  A change to their non-Var state (learning rate, train/eval mode,
a new optimizer state entry) retraces.

>>> import mnn_expr as F
>>> f = F.compile(lambda a, b: {"sum": a + b, "prod": a * b})
>>> f(F.array([1.0, 2.0]), F.array([3.0, 4.0]))["prod"].tolist()
[3.0, 8.0]

Dynamic dims: ``dynamic_axes`` names axes whose size may change between calls (a batch axis,
a sequence length).  The first call traces ``fn`` twice, at its size and at another, and
merges the two traces into one graph whose reshapes and slices follow the sizes at run time;
every later call, whatever those sizes, runs that graph natively (one plan per new size, no
Python).  A function whose graph depends on a size (a Python number taken from ``x.shape``)
cannot be generalised: it is compiled per size instead, with a warning that says why.

Limits (they raise errors that say so): inside ``fn``, values cannot be read (``bool()``,
``float()``, ``read()``: use ``F.where``); random draws would repeat the same numbers each
call, so ``fn`` may not draw them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from . import _native
from ._native import Var
from ._var import value_leaf
from .creation import asarray, placeholder
from .executor import _tracing, evaluate, lazy_eval
from .graph_capture import build_graph, grown, merge_dynamic, to_subgraph

__all__ = ["compile", "Compiled"]

_RANDOM_OPS = frozenset({"random_uniform", "random_normal"})
_KIND_TRAINABLE = 2


# ---- nested arguments (lists, tuples, dicts of Vars and constants) -----------------------------

def _flatten(tree: Any, leaves: list, what: str = "compile: arguments") -> Any:
    """Appends the Var leaves of nested lists/tuples/dicts ``tree`` to ``leaves``; returns its
    structure (hashable, with the other leaves as constants).  Also used by control_flow."""
    if isinstance(tree, Var):
        leaves.append(tree)
        return "V"
    if isinstance(tree, (list, tuple)):
        return (type(tree).__name__, tuple(_flatten(t, leaves, what) for t in tree))
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("dict", keys, tuple(_flatten(tree[k], leaves, what) for k in keys))
    try:
        hash(tree)
    except TypeError:
        raise TypeError(f"{what} must be Vars, lists/tuples/dicts of them, or hashable constants; "
                        f"got {type(tree).__name__}") from None
    return ("C", type(tree).__name__, tree)


def _unflatten(spec: Any, leaves: list, pos: list) -> Any:
    if spec == "V":
        pos[0] += 1
        return leaves[pos[0] - 1]
    kind = spec[0]
    if kind == "C":
        return spec[2]
    if kind == "dict":
        return {k: _unflatten(s, leaves, pos) for k, s in zip(spec[1], spec[2])}
    items = [_unflatten(s, leaves, pos) for s in spec[1]]
    return tuple(items) if kind == "tuple" else items


# ---- state: Vars owned by modules / optimizers that fn reads and may update ----------------------
#
# A state source is a list of handles (Var objects that fn reads and may rebind: parameters,
# buffers) plus, for optimizers, their per-parameter state dicts (which a step replaces).

class _State:
    def __init__(self) -> None:
        self.handles: list = []  # (name, Var handle)
        self.optimizers: list = []  # optimizers whose _states dicts are state
        self.fingerprint: list = []  # non-Var state: retrace when it changes
        self._seen: set = set()

    def add(self, obj: Any, prefix: str = "") -> None:
        if obj is None:
            return
        if isinstance(obj, Var):
            if obj._id() not in self._seen:
                self._seen.add(obj._id())
                self.handles.append((prefix or "var", obj))
        elif isinstance(obj, (list, tuple)):
            for i, o in enumerate(obj):
                self.add(o, f"{prefix}[{i}]")
        elif hasattr(obj, "named_parameters") and hasattr(obj, "named_buffers"):  # a Module
            for name, v in (*obj.named_parameters(), *obj.named_buffers()):
                self.add(v, f"{prefix}.{name}" if prefix else name)
            self.fingerprint.append(tuple(m.training for m in obj.modules()))
        elif hasattr(obj, "param_groups") and hasattr(obj, "_states"):  # an optimizer
            for i, p in enumerate(obj.parameters()):
                self.add(p, f"{prefix}.param[{i}]")
            self.optimizers.append(obj)
            for group in obj.param_groups:
                self.fingerprint.append(tuple((k, v) for k, v in group.items() if k != "params" and _hashable(v)))
        else:
            raise TypeError(f"compile: state must be Modules, optimizers, Vars or lists of them; "
                            f"got {type(obj).__name__}")

    def opt_vars(self) -> list:
        """((optimizer index, parameter index, key), value) for every Var and number (a step count) in the
        optimizers' states: inputs of the program (numbers as 0-d placeholders)."""
        return [((j, i, k), v) for j, opt in enumerate(self.optimizers) for i, st in enumerate(opt._states)
                for k, v in st.items() if _is_input(v)]

    def signature(self) -> tuple:
        opt_consts = tuple((j, i, k, v if _hashable(v) else repr(v)) for j, opt in enumerate(self.optimizers)
                           for i, st in enumerate(opt._states) for k, v in st.items() if not _is_input(v))
        return (tuple((n, *_info(h)) for n, h in self.handles), tuple((key, *_info(v)) for key, v in self.opt_vars()),
                opt_consts, tuple(self.fingerprint))


_NUMBER_DTYPES = {int: np.int64, float: np.float64}


def _is_input(v: Any) -> bool:
    return isinstance(v, Var) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _hashable(v: Any) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False


# ---- the compiled program -------------------------------------------------------------------------

class _Program:
    """One trace: placeholders for the arguments and the state, and the graph of the results."""

    def __init__(self) -> None:
        self.inputs: list = []  # placeholders of the Var arguments
        self.handle_phs: list = []  # placeholders of the state handles (same order)
        self.opt_phs: dict = {}  # (optimizer, parameter, key) -> placeholder of an optimizer-state Var
        self.outputs: list = []
        self.out_spec: Any = None
        self.new_handles: list = []  # per handle: its traced new value, or None when fn leaves it
        self.new_opt_states: list = []  # per optimizer: per parameter, {key: traced Var or constant}
        self.graph: Any = None  # dynamic dims: the merged graph (_native.SubGraph) that every call runs

    def placeholders(self) -> list:
        """Every input of the program: state handles, optimizer state, then the arguments."""
        return self.handle_phs + list(self.opt_phs.values()) + self.inputs

    def pending(self) -> list:
        news = [v for v in self.new_handles if v is not None]
        news += [v for states in self.new_opt_states for st in states for v in st.values() if isinstance(v, Var)]
        return self.outputs + news


def _check_no_random(roots: list) -> None:
    seen, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if v._id() in seen:
            continue
        seen.add(v._id())
        op = v._op
        if op in _RANDOM_OPS:
            raise NotImplementedError(
                f"compile: the function draws random numbers ({op}); a compiled program would repeat the same draw "
                "on every call. Draw them outside and pass them in as arguments.")
        if v._has_history:
            stack.extend(v._inputs)


def _fold_constants(roots: list) -> int:
    """Constant folding at trace time: computes, once, every sub-expression of the trace that
    reads no placeholder (it would give the same value on every call), so runs read its value
    as a leaf.  Only the frontier is evaluated (constant inputs of placeholder-dependent ops);
    returns how many sub-expressions were folded."""
    frontier, seen, stack = [], set(), list(roots)
    while stack:
        v = stack.pop()
        if v._id() in seen or v._computed or not v._has_history:
            continue
        seen.add(v._id())
        if not v._from_placeholder:
            frontier.append(v)  # reads only constants: fold
            continue
        stack.extend(v._inputs)
    if frontier:
        evaluate(*frontier)
    return len(frontier)


def _leaf_value(v: Var, like: Optional[Var] = None) -> Var:
    """The computed value of ``v`` as a history-free Var (sharing its memory), trainable like ``like``."""
    out = value_leaf(v)
    if like is not None and (like.requires_grad or like._kind == _KIND_TRAINABLE):
        out._set_kind(_KIND_TRAINABLE)
        out.requires_grad = True
    return out


class Compiled:
    """A function compiled by :func:`compile`: call it like the function.

    >>> import mnn_expr as F
    >>> sq = F.compile(lambda x: (x * x).sum())
    >>> sq(F.array([1.0, 2.0])).item(), sq(F.array([3.0])).item(), sq.traces
    (5.0, 9.0, 2)
    """

    def __init__(self, fn: Callable, state: Any = None, fold_constants: bool = True,
                 dynamic_axes: Any = None) -> None:
        self.fn, self.state, self.fold_constants = fn, state, fold_constants
        self.dynamic_axes = _check_dynamic_axes(dynamic_axes)
        self.dynamic_fallback: Optional[str] = None  # why the traces could not be generalised, if so
        self._programs: dict = {}
        self.traces = 0  # how many signatures were traced
        self.folded = 0  # constant sub-expressions computed at trace time (all traces)
        self._memory: dict = {}
        functools.update_wrapper(self, fn)

    def memory_stats(self) -> dict:
        """Memory of the program's last run: ``arena_bytes`` (the planned peak of its
        intermediates), ``unplanned_bytes`` (each in a buffer of its own), ``planned_values``,
        ``result_bytes`` (see :func:`mnn_expr.last_plan_memory`); empty before the first run."""
        return dict(self._memory)

    def _signature(self, args: tuple, kwargs: dict) -> tuple:
        leaves: list = []
        spec = _flatten((args, kwargs), leaves)
        state = _State()
        state.add(self.state)
        dynamic = self.dynamic_axes is not None and self.dynamic_fallback is None
        dyn = self._dynamic_dims(args, kwargs) if dynamic else []
        infos = tuple(_info(v, d) for v, d in zip(leaves, dyn or [()] * len(leaves)))
        key = (spec, infos, state.signature())
        return key, spec, leaves, state, dyn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key, spec, leaves, state, dyn = self._signature(args, kwargs)
        prog = self._programs.get(key)
        if prog is None:
            prog = self._trace_dynamic(spec, leaves, state, dyn) if any(dyn) else self._trace(spec, leaves, state)
            if prog is None:  # could not be generalised: per size from now on
                key, spec, leaves, state, dyn = self._signature(args, kwargs)
                prog = self._programs.get(key) or self._trace(spec, leaves, state)
            self._programs[key] = prog
        return self._run(prog, leaves, state)

    def _dynamic_dims(self, args: tuple, kwargs: dict) -> list:
        """Per Var leaf of the arguments (in _flatten's order), the set of its dynamic axes."""
        out: list = []
        named = self.dynamic_axes if isinstance(self.dynamic_axes, dict) else None

        def walk(tree: Any, axes: tuple) -> None:
            if isinstance(tree, Var):
                bad = [a for a in axes if not -tree.ndim <= a < tree.ndim]
                if named is not None and bad:
                    raise ValueError(f"compile: dynamic axis {bad[0]} is out of range for an argument of shape "
                                     f"{tuple(tree.shape)}")
                out.append({a % tree.ndim for a in axes if -tree.ndim <= a < tree.ndim})
            elif isinstance(tree, (list, tuple)):
                for t in tree:
                    walk(t, axes)
            elif isinstance(tree, dict):
                for t in tree.values():
                    walk(t, axes)

        for i, a in enumerate(args):
            walk(a, tuple(named.get(i, ())) if named is not None else tuple(self.dynamic_axes))
        for k, a in kwargs.items():
            walk(a, tuple(named.get(k, ())) if named is not None else tuple(self.dynamic_axes))
        return out

    def _trace_dynamic(self, spec: Any, leaves: list, state: _State, dyn: list) -> Optional[_Program]:
        """Traces at the arguments' sizes and again with every dynamic dim changed, and merges the two
        traces into one graph (None, with a warning, when they cannot be merged)."""
        others = [_placeholder_like(v, "", grown(v.shape, d)) if d else v for v, d in zip(leaves, dyn)]
        progs = [self._trace(spec, ls, state, dynamic=True) for ls in (leaves, others)]
        try:
            g, g2 = (build_graph(p.pending(), [f"out{i}" for i in range(len(p.pending()))], p.placeholders(),
                                 [f"in{i}" for i in range(len(p.placeholders()))], {}) for p in progs)
            merge_dynamic(g, g2, "compile")
        except ValueError as e:
            self.dynamic_fallback = str(e)
            warnings.warn(f"{e}\ncompile: {getattr(self.fn, '__name__', 'the function')} is compiled per size instead "
                          "of once for all sizes of its dynamic axes", stacklevel=3)
            return None
        progs[0].graph = to_subgraph(g)
        self.traces -= 1  # one signature, traced twice
        return progs[0]

    def _trace(self, spec: Any, leaves: list, state: _State, dynamic: bool = False) -> _Program:
        prog = _Program()
        saved_handles = [h._alias() for _, h in state.handles]
        saved_states = [opt._states for opt in state.optimizers]
        for name, h in state.handles:
            prog.handle_phs.append(_placeholder_like(h, name))
        for key, v in state.opt_vars():
            prog.opt_phs[key] = _placeholder_like(v, f"opt{key[0]}.state[{key[1]}].{key[2]}")
        for i, v in enumerate(leaves):
            prog.inputs.append(_placeholder_like(v, f"arg{i}"))
        args, kwargs = _unflatten(spec, prog.inputs, [0])
        try:
            for (_, h), ph in zip(state.handles, prog.handle_phs):
                h._rebind(ph)
            for j, opt in enumerate(state.optimizers):
                opt._states = [{k: prog.opt_phs[(j, i, k)] if _is_input(v) else v for k, v in st.items()}
                               for i, st in enumerate(opt._states)]
            with _tracing(dynamic), lazy_eval(True):
                out = self.fn(*args, **kwargs)
            prog.new_handles = [None if h._same(ph) else h._alias()
                                for (_, h), ph in zip(state.handles, prog.handle_phs)]
            prog.new_opt_states = [[dict(st) for st in opt._states] for opt in state.optimizers]
        finally:
            for (_, h), cur in zip(state.handles, saved_handles):
                h._rebind(cur)
            for opt, st in zip(state.optimizers, saved_states):
                opt._states = st
        prog.out_spec = _flatten(out, prog.outputs)
        _check_no_random(prog.pending())
        if self.fold_constants and not dynamic:  # (folded values would bake in the traced sizes)
            self.folded += _fold_constants(prog.pending())
        self.traces += 1
        return prog

    def _run(self, prog: _Program, leaves: list, state: _State) -> Any:
        values = self._compute(prog, leaves, state)  # aligned with prog.pending()
        computed = {v._id(): c for v, c in zip(prog.pending(), values)}
        for (_, h), new in zip(state.handles, prog.new_handles):
            if new is not None:
                h._rebind(_leaf_value(computed[new._id()], like=h))
        for opt, states, old in zip(state.optimizers, prog.new_opt_states, [o._states for o in state.optimizers]):
            opt._states = [{k: _stored(computed.get(v._id(), v) if isinstance(v, Var) else v, st_old.get(k))
                            for k, v in st.items()} for st, st_old in zip(states, old)]
        return _unflatten(prog.out_spec, [_leaf_value(computed[v._id()]) for v in prog.outputs], [0])

    def _compute(self, prog: _Program, leaves: list, state: _State) -> list:
        """The program's pending values on these arguments and state, computed in one native call."""
        inputs = [h for _, h in state.handles]
        inputs += [v if isinstance(v, Var) else asarray(np.asarray(v, _NUMBER_DTYPES[type(v)]))
                   for _, v in state.opt_vars()]
        inputs += leaves
        if prog.graph is not None:  # dynamic dims: run the merged graph at these sizes
            with lazy_eval(True):
                values = prog.graph.run(inputs)
        else:
            for ph, v in zip(prog.placeholders(), inputs):
                ph._write_var(v)  # (shares the value: no copy)
            values = prog.pending()
        if values:
            evaluate(*values)
            self._memory = _native.last_plan_memory()
        return values


def _stored(v: Any, old: Any) -> Any:
    """A computed optimizer-state entry as stored between steps: numbers stay Python numbers."""
    if not isinstance(v, Var):
        return v
    if isinstance(old, (int, float)) and not isinstance(old, bool) and v.ndim == 0:
        return type(old)(v.item())
    return _leaf_value(v)


def _placeholder_like(v: Any, name: str, shape: Optional[tuple] = None) -> Var:
    if not isinstance(v, Var):  # a number in an optimizer's state
        return placeholder((), "int64" if isinstance(v, int) else "float64", name=name)
    ph = placeholder(v.shape if shape is None else shape, v.dtype, name=name)
    if v.requires_grad:
        ph.requires_grad = True
    return ph


def _info(v: Any, dynamic: Any = ()) -> tuple:
    """A leaf's part of a signature: its shape (None for a dynamic dim) and dtype."""
    if not isinstance(v, Var):
        return ((), type(v).__name__)
    return (tuple(None if k in dynamic else d for k, d in enumerate(v.shape)), v.dtype.name)


def _check_dynamic_axes(dynamic_axes: Any) -> Any:
    """``{argument index or keyword: [axes]}``, or ``[axes]`` for every Var argument (checked)."""
    if dynamic_axes is None:
        return None
    items = dynamic_axes.items() if isinstance(dynamic_axes, dict) else [(None, dynamic_axes)]
    for key, axes in items:
        if key is not None and not isinstance(key, (int, str)):
            raise TypeError(f"compile: dynamic_axes keys are argument positions or keyword names, got {key!r}")
        if not isinstance(axes, (list, tuple)) or not all(isinstance(a, int) for a in axes):
            raise TypeError(f"compile: dynamic_axes must give a list of int axes, got {axes!r}")
    return {k: list(v) for k, v in dynamic_axes.items()} if isinstance(dynamic_axes, dict) else list(dynamic_axes)


def compile(fn: Optional[Callable] = None, *, state: Any = None,  # noqa: A001  (the library's verb)
            fold_constants: bool = True, dynamic_axes: Any = None) -> Any:
    """Compiles ``fn`` (also as a decorator, with or without ``state=``): see the module docs.

    ``state``: Modules, optimizers or Vars whose Vars ``fn`` reads (and may update).
    ``fold_constants``: compute sub-expressions that read no argument or state once, at trace
    time (``Compiled.folded`` counts them); off, they are recomputed on every call.
    ``dynamic_axes``: axes whose size may change without a new trace: ``{0: [0]}`` (argument
    0's axis 0; keyword arguments by name; every Var inside a nested argument), or ``[0]``
    (axis 0 of every Var argument that has one).

    >>> import mnn_expr as F
    >>> norm = F.compile(lambda x: x / F.sum(x, axis=1, keepdims=True), dynamic_axes=[0])
    >>> [norm(F.ones((n, 2))).shape for n in (3, 5)], norm.traces
    ([(3, 2), (5, 2)], 1)

    >>> import mnn_expr as F
    >>> @F.compile
    ... def affine(x, w, b):
    ...     return F.matmul(x, w) + b
    >>> affine(F.ones((1, 2)), F.ones((2, 3)), F.zeros(3)).tolist()
    [[2.0, 2.0, 2.0]]
    """
    if fn is None:
        return lambda f: Compiled(f, state, fold_constants, dynamic_axes)
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    return Compiled(fn, state, fold_constants, dynamic_axes)
