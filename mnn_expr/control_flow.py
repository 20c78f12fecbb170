"""Control flow: ``cond``, ``while_loop``, ``fori_loop``, ``scan`` (JAX's signatures).

They are graph ops holding graph bodies (the ``if`` and ``loop`` primitives, MNN's
``If``/``While``, ONNX's ``If``/``Loop``): the branches and the loop body are traced into
bodies (outer values they read become extra inputs, "captures"), so what is recorded is one
control-flow op, not the branch taken or the unrolled iterations.  Both branches must give
results of the same structure, shapes and dtypes; a loop must keep its state's shapes and
dtypes.  Gradients flow through ``cond``, ``scan`` and ``fori_loop`` (int bounds: a static trip
count) by the ``if``/``loop`` gradient rules; reverse mode through ``while_loop`` raises (its
trip count depends on values: use ``fori_loop`` or ``scan``).

How the modes build them:

* **compile / export** (tracing): the bodies are traced and the op is recorded.  Where
  gradients are wanted, small ``fori_loop``/``scan`` loops unroll (see ``UNROLL_OPS``: faster)
  and consumers that ask for it (:class:`lowered`) get ``where`` and unrolled ops.
* **eager** (the default): the Python functions run directly, as written (a predicate that is
  a Var is read; ``print`` and other side effects happen; ``.item()`` works), and their values
  are the results.  When a result has history to keep (it depends on a value that requires
  gradients, or on a placeholder: ``F.save`` / a later ``write`` recomputes it), the functions
  are also traced (once per call: their side effects happen again, on placeholders; for
  ``cond`` the branch not taken is traced too) and the results become the outputs of the
  ``if``/``loop`` node, holding the values the direct run computed
  (``_native.apply_computed``).  A recorded loop keeps no per-iteration history: after its
  first iteration it runs on the values only.  Results with nothing to keep are plain values,
  as any eager op's, and nothing is traced (no overhead).
* **lazy** (``F.lazy_eval(True)``), or eager on a predicate/state that reads an unwritten
  placeholder: the bodies are traced and the node is recorded lazily: nothing runs until a
  result is read (then the ``if``/``loop`` op runs natively).

When the functions cannot be traced into a body (they read concrete values, call ``.item()``,
branch on data in Python, give branches of different shapes, change the state's dtypes) or
draw random numbers (the node's gradient would run them again and draw others), the
eager and lazy modes fall back to running them directly and recording the ops they ran (the
branch taken, every iteration unrolled), with a one-time warning per function; gradients then
flow through those ops, and a saved graph holds them.

>>> import mnn_expr as F
>>> F.cond(F.array(2.0) > 1, lambda x: x * 10, lambda x: x, F.array(3.0)).item()
30.0
>>> F.fori_loop(0, 4, lambda i, acc: acc + i, F.array(0.0)).item()
6.0
>>> x = F.array([0.5, 2.0]); x.requires_grad = True
>>> y = F.cond(x.sum() > 1, lambda v: v * v, lambda v: -v, x)
>>> y._op, F.grad(y.sum(), [x])[0].tolist()
('if', [1.0, 4.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import _native
from . import executor as _executor
from ._native import Var
from .compile import _RANDOM_OPS, _flatten, _unflatten
from .creation import asarray

__all__ = ["cond", "while_loop", "fori_loop", "scan", "lowered", "for_inference"]

_LOWERED = [0]  # > 0: build where/unrolled ops instead of if/loop while tracing
_INFERENCE = [0]  # > 0: no gradient will be taken of what is traced (export): keep if/loop ops
_OUTSIDE = [0]  # > 0: bodies are traced for an eager/lazy node (computed values that need history are captures)
_QUIET = [0]  # > 0: the iterations of a recorded eager loop run: control flow inside them records nothing
_WARNED: set = set()  # functions whose fallback was reported
_KIND_PLACEHOLDER = 1
# Where gradients are wanted through fori_loop/scan, a loop whose unrolled graph stays under this many
# ops unrolls (one fused, planned graph: a rolled loop runs its body's plan per iteration, and its
# gradient recomputes the forward: a 20-step RNN step 1.0 ms unrolled, 4.2 ms rolled); longer ones
# stay rolled and differentiate with the loop rule.
UNROLL_OPS = 4096
_SMALL_ENOUGH = "small enough to unroll where gradients are wanted"


class for_inference:  # noqa: N801  (a context manager)
    """While tracing, build ``if``/``loop`` ops even where values require gradients: the trace
    is for inference (export), so no gradient will be taken through them."""

    def __enter__(self) -> None:
        _INFERENCE[0] += 1

    def __exit__(self, *exc: Any) -> None:
        _INFERENCE[0] -= 1


def _wants_grad(vs: Any) -> bool:
    return not _INFERENCE[0] and any(v.requires_grad for v in vs)


class lowered:  # noqa: N801  (a context manager)
    """While tracing, build ``cond`` as ``where`` and unroll ``fori_loop``/``scan`` instead of
    making ``if``/``loop`` ops (for consumers without graph bodies)."""

    def __enter__(self) -> None:
        _LOWERED[0] += 1

    def __exit__(self, *exc: Any) -> None:
        _LOWERED[0] -= 1


def _leaves(tree: Any, out: list) -> Any:
    return _flatten(tree, out, "control flow: values")


def _concrete(pred: Any, what: str) -> bool:
    """The Python truth of ``pred`` (a bool, a number or a one-element Var)."""
    if isinstance(pred, Var):
        if pred.size != 1:
            raise ValueError(f"{what}: the predicate must have one element, got shape {pred.shape}")
        return bool(pred.read().item())
    return bool(pred)


def cond(pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``.

    With a predicate that is a Var, the result is the output of an ``if`` op with both branches
    as bodies (see the module docstring for how each mode builds it); gradients flow through it
    (its vjp is an ``if`` of the branches' vjps).  In eager mode the branch taken runs directly
    and gives the values.  A Python predicate just picks the branch.

    >>> import mnn_expr as F
    >>> F.cond(False, lambda x: x + 1, lambda x: x - 1, F.array(1.0)).item()
    0.0
    """
    traced = isinstance(pred, Var) and _executor.is_tracing()
    if isinstance(pred, Var) and not traced and not _QUIET[0]:
        if _executor.is_lazy() or _pending([pred]):
            done = _outside_cond(pred, true_fn, false_fn, operands, None)
            if done is not _FAILED:
                return done
        else:
            out = (true_fn if _concrete(pred, "cond") else false_fn)(*operands)
            out_leaves: list = []
            try:
                out_spec = _leaves(out, out_leaves)
            except TypeError:
                return out  # (results that are not Vars: nothing to record)
            if out_leaves and _records([pred, *out_leaves]):
                # (values that read an unwritten placeholder are lazy: then the node is too)
                computed = None if _pending(out_leaves) else (out_spec, out_leaves)
                done = _outside_cond(pred, true_fn, false_fn, operands, computed)
                if done is not _FAILED:
                    return done
            return out
    if not traced:
        return true_fn(*operands) if _concrete(pred, "cond") else false_fn(*operands)
    from .elementwise import where  # (a late import: elementwise imports this package's core)

    p = asarray(pred)
    if p.size != 1:
        raise ValueError(f"cond: the predicate must have one element, got shape {p.shape}")
    p = p.reshape(()).astype("bool")
    native = _native_cond(p, true_fn, false_fn, operands)
    if native is not None:
        return native
    t_leaves: list = []
    f_leaves: list = []
    t_spec = _leaves(true_fn(*operands), t_leaves)
    f_spec = _leaves(false_fn(*operands), f_leaves)
    if t_spec != f_spec:
        raise TypeError(f"cond: inside compile both branches must return the same structure, got {t_spec} and "
                        f"{f_spec}")
    out = []
    for i, (a, b) in enumerate(zip(t_leaves, f_leaves)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise TypeError(f"cond: inside compile result {i} of the branches differs: {a.shape} {a.dtype} vs "
                            f"{b.shape} {b.dtype}")
        out.append(where(p, a, b))
    return _unflatten(t_spec, out, [0])


# ---- eager and lazy nodes ------------------------------------------------------------------------------

_FAILED = object()  # an eager/lazy node could not be built: run the functions as they are


def _records(vs: list) -> bool:
    """Whether eager values keep their history (they require gradients or depend on a placeholder):
    then a control-flow op is recorded for them."""
    return any(isinstance(v, Var) and (v.requires_grad or v._from_placeholder or v._kind == _KIND_PLACEHOLDER)
               for v in vs)


def _pending(vs: list) -> bool:
    """Whether an eager value reads a placeholder that has no value yet (it is a lazy node)."""
    stack = [v for v in vs if isinstance(v, Var) and not v._computed]
    seen: set = set()
    while stack:
        v = stack.pop()
        if v._id() in seen:
            continue
        seen.add(v._id())
        if v._kind == _KIND_PLACEHOLDER:
            return True
        if v._has_history:
            stack.extend(x for x in v._inputs if not x._computed)
    return False


def _traced(build: Callable) -> Any:
    """build() with bodies traced for an eager/lazy node; the exception it raised, if any.  Nodes
    that draw random numbers (in a body, or in outer work hoisted into a lazy input) are refused:
    the direct run drew its own numbers, and the node's gradient or a recomputation would draw
    others."""
    _OUTSIDE[0] += 1
    try:
        done = build()
        if _draws_random(*_node_parts(done)):
            raise NotImplementedError("it draws random numbers (the node's gradient would draw them again)")
        return done
    except Exception as e:  # noqa: BLE001  (any failure to trace falls back to the direct run)
        return e
    finally:
        _OUTSIDE[0] -= 1


def _node_parts(done: Any) -> tuple:
    """(inputs, attributes) of the node _cond_parts / _loop_parts / _native_loop built."""
    if isinstance(done, tuple) and len(done) == 3 and isinstance(done[1], dict):  # _cond_parts
        return list(done[0]), list(done[1].values())
    if isinstance(done, tuple) and len(done) == 2 and isinstance(done[1], dict):  # _loop_parts (captures)
        return list(done[0]), list(done[1].values())
    if isinstance(done, tuple) and len(done) == 2:  # _native_loop / _native_scan results: the loop's outputs
        outs: list = []
        _leaves(done, outs)
        if outs and outs[0]._has_history:
            return outs[0]._inputs, list(outs[0]._attrs.values())
    return [], []


def _draws_random(inputs: list, attrs: list) -> bool:
    """Whether a node's bodies (nested ones too) or the pending work of its inputs have a random op."""
    for a in attrs:
        if isinstance(a, _native.SubGraph):
            d = a.describe()
            if any(op in _RANDOM_OPS for op, *_ in d["nodes"]) or \
                    any(_draws_random([], list(at.values())) for _, at, _, _ in d["nodes"]):
                return True
    seen: set = set()
    stack = [v for v in inputs if not v._computed]
    while stack:
        v = stack.pop()
        if v._id() in seen or not v._has_history:
            continue
        seen.add(v._id())
        if v._op in _RANDOM_OPS or _draws_random([], list(v._attrs.values())):
            return True
        stack.extend(x for x in v._inputs if not x._computed)
    return False


def _fallback(what: str, fns: tuple, why: Any) -> Any:
    """Reports once per function that it runs as written (its ops recorded as they run)."""
    key = (what, *(getattr(f, "__code__", None) for f in fns))
    if key not in _WARNED:
        _WARNED.add(key)
        if isinstance(why, Exception):
            why = f"{type(why).__name__}: {why}"
        names = " / ".join(getattr(f, "__qualname__", type(f).__name__) for f in fns)
        warnings.warn(f"{what}: {names} could not be traced into a graph body ({why}); the ops it runs are recorded "
                      f"instead (the branch taken, every iteration), so a saved graph holds those, not one {what} op",
                      stacklevel=4)
    return _FAILED


def _outside_cond(pred: Var, true_fn: Callable, false_fn: Callable, operands: tuple, computed: Any) -> Any:
    """An eager/lazy cond as an ``if`` node: lazy (``computed`` None) or holding the values the
    direct run gave (``computed`` = (structure, leaves))."""
    if pred.size != 1:
        raise ValueError(f"cond: the predicate must have one element, got shape {pred.shape}")
    p = pred.reshape(()).astype("bool")
    parts = _traced(lambda: _cond_parts(p, true_fn, false_fn, operands))
    if parts is None:
        return _FAILED
    if isinstance(parts, Exception):
        return _fallback("cond", (true_fn, false_fn), parts)
    inputs, attrs, spec = parts
    if computed is None:
        return _unflatten(spec, _native.apply("if", inputs, attrs), [0])
    out_spec, values = computed
    if out_spec != spec:
        return _fallback("cond", (true_fn, false_fn), f"the branch taken returned {out_spec}, its trace {spec}")
    try:
        outs = _native.apply_computed("if", inputs, attrs, values)
    except ValueError as e:
        return _fallback("cond", (true_fn, false_fn), e)
    return _unflatten(spec, outs, [0])


class _LoopRecord:
    """A loop op recorded for an eager loop: its first iteration ran with history and asked for
    it; the rest run on values only (``detach``), then ``finish`` makes the loop node holding the
    values they gave."""

    def __init__(self, what: str, spec: Any, init_leaves: list, cond0: Var, captures: list, attrs: dict) -> None:
        self.what, self.spec, self.init, self.cond0 = what, spec, init_leaves, cond0
        self.captures, self.attrs = captures, attrs
        self.infos = [(v.shape, v._dtype_name) for v in init_leaves]

    def detach(self, state: Any, step: int) -> Any:
        """``state`` as values without history (checked against the traced body's state)."""
        if self.spec == "V" and isinstance(state, Var):  # (the common case, quickly)
            leaves = [state]
        else:
            leaves = []
            if _leaves(state, leaves) != self.spec:
                leaves = None
        if leaves is None or [(v.shape, v._dtype_name) for v in leaves] != self.infos:
            raise TypeError(f"{self.what}: the body changed its state's structure, shapes or dtypes at step {step} "
                            "(its traced body keeps them)")
        if self.spec == "V":
            return _native.value_only(leaves[0])
        return _unflatten(self.spec, [_native.value_only(v) for v in leaves], [0])

    def finish(self, state: Any, per_step: list) -> tuple:
        """The loop node's (final state, per-step outputs), holding the values of ``state``, ``per_step``."""
        leaves: list = []
        _leaves(state, leaves)
        n = len(leaves)
        try:
            outs = _native.apply_computed("loop", [self.cond0, *self.init, *self.captures], self.attrs,
                                          [*leaves, *self.captures, *per_step])
        except ValueError as e:
            raise TypeError(f"{self.what}: the values the direct run gave differ from what its traced body gives "
                            f"({e})") from None
        return _unflatten(self.spec, outs[:n], [0]), outs[n + len(self.captures):]


class _quiet:  # noqa: N801  (a context manager)
    def __enter__(self) -> None:
        _QUIET[0] += 1

    def __exit__(self, *exc: Any) -> None:
        _QUIET[0] -= 1


def _start_record(what: str, fns: tuple, body: Callable, spec: Any, init_leaves: list, cond0: Var, trip: int,
                  first: list) -> Any:
    """After an eager loop's first iteration (its new state and per-step leaves ``first``): the
    loop node to record when they keep history, else None (the loop goes on as written)."""
    if _QUIET[0] or not _records([*init_leaves, *first]) or _pending([*init_leaves, *first]):
        return None
    # (the same graph tracing builds: where gradients are wanted, a loop whose unrolled graph stays
    # under UNROLL_OPS is unrolled ops, which the loop going on as written records)
    parts = _traced(lambda: _loop_parts(body, init_leaves, trip))
    if isinstance(parts, str) and parts.startswith(_SMALL_ENOUGH):
        return None
    if isinstance(parts, (str, Exception)):
        _fallback(what, fns, parts)
        return None
    return _LoopRecord(what, spec, init_leaves, cond0, *parts)


def _lazy_loop(what: str, fns: tuple, body: Callable, init_leaves: list, cond0: Any, trip: int) -> Any:
    """A lazy loop node (lazy mode, or a state that reads an unwritten placeholder): (final state
    leaves, per-step leaves), or _FAILED."""
    done = _traced(lambda: _native_loop(body, init_leaves, cond0() if callable(cond0) else cond0, trip,
                                        unroll_small=False))
    if isinstance(done, (str, Exception)):
        return _fallback(what, fns, done)
    return done


def _spec_or_none(tree: Any, leaves: list) -> Any:
    """The structure of a loop's state (its Var leaves appended), or None when it is not made of
    Vars and hashable constants (an eager loop then runs as written)."""
    try:
        return _leaves(tree, leaves)
    except TypeError:
        leaves.clear()
        return None


def _lazy_node_wanted(vs: list) -> bool:
    return not _QUIET[0] and not _executor.is_tracing() and (_executor.is_lazy() or _pending(vs))


def _params(leaves: list) -> list:
    """Placeholders standing for traced arguments."""
    from .creation import placeholder
    return [placeholder(v.shape, v.dtype, name=f"arg{i}") for i, v in enumerate(leaves)]


def _union(*capture_lists: list) -> list:
    out, seen = [], set()
    for caps in capture_lists:
        for v in caps:
            if v._id() not in seen:
                seen.add(v._id())
                out.append(v)
    return out


def _capture(fn: Callable, params: list, call: Callable) -> Any:
    """graph_capture.capture_body; for an eager/lazy node the computed values the body reads that
    need their history (they require gradients, or are placeholders) become captures too (a
    trace inside compile sees its state as placeholders, so there they are constants)."""
    from .graph_capture import capture_body

    b = capture_body(fn, params, call)
    if not _OUTSIDE[0]:
        return b
    skip = {v._id() for v in [*b.params, *b.captures]}
    seen: set = set()
    stack = list(b.outputs)
    while stack:
        v = stack.pop()
        if v._id() in seen or v._id() in skip:
            continue
        seen.add(v._id())
        if v._computed and not v._from_placeholder:
            if v.requires_grad or v._kind == _KIND_PLACEHOLDER:
                b.captures.append(v)
            continue
        if v._has_history:
            stack.extend(v._inputs)
    return b


def _native_cond(p: Var, true_fn: Callable, false_fn: Callable, operands: tuple) -> Any:
    """``cond`` as an ``if`` op with both branches as bodies (its gradient is an ``if`` of their
    vjps); None when the consumer wants control flow lowered."""
    parts = _cond_parts(p, true_fn, false_fn, operands)
    if parts is None:
        return None
    inputs, attrs, out_spec = parts
    return _unflatten(out_spec, _native.apply("if", inputs, attrs), [0])


def _cond_parts(p: Var, true_fn: Callable, false_fn: Callable, operands: tuple) -> Any:
    """(inputs, attrs, result structure) of the ``if`` op of a cond; None when lowered."""
    leaves: list = []
    spec = _leaves(operands, leaves)
    if _LOWERED[0]:
        return None

    def call(fn: Callable) -> Callable:
        return lambda ps: fn(*_unflatten(spec, ps, [0]))
    t = _capture(true_fn, _params(leaves), call(true_fn))
    f = _capture(false_fn, _params(leaves), call(false_fn))
    if t.out_spec != f.out_spec:
        raise TypeError(f"cond: inside compile both branches must return the same structure, got {t.out_spec} and "
                        f"{f.out_spec}")
    for i, (a, b) in enumerate(zip(t.outputs, f.outputs)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise TypeError(f"cond: inside compile result {i} of the branches differs: {a.shape} {a.dtype} vs "
                            f"{b.shape} {b.dtype}")
    caps = _union(t.captures, f.captures)
    return [p, *leaves, *caps], {"then_graph": t.subgraph(caps), "else_graph": f.subgraph(caps)}, t.out_spec


def _native_loop(body: Callable, init_leaves: list, cond0: Var, trip: int, xs: list = (),
                 differentiable: bool = True, unroll_small: bool = True) -> Any:
    """A ``loop`` op: ``body(i, state_leaves, xs) -> (cond, new_state_leaves, per_step_leaves)`` traced once.
    Returns (final state leaves, stacked per-step leaves), or a string saying why it cannot be one:
    lowering was asked for, gradients are wanted through a loop that is not ``differentiable``
    (its trip count depends on values) or that is small enough to unroll (``unroll_small``, see
    UNROLL_OPS), or the body changes the state's dtypes/shapes."""
    parts = _loop_parts(body, init_leaves, trip, xs, differentiable, unroll_small)
    if isinstance(parts, str):
        return parts
    captures, attrs = parts
    n = len(init_leaves)
    outs = _native.apply("loop", [cond0, *init_leaves, *captures], attrs)
    return outs[:n], outs[n + len(captures):]


def _loop_parts(body: Callable, init_leaves: list, trip: int, xs: list = (), differentiable: bool = True,
                unroll_small: bool = True) -> Any:
    """(captures, attrs) of the ``loop`` op of ``body`` (see _native_loop), or why it cannot be one."""
    from .creation import placeholder
    from .graph_capture import build_graph, to_subgraph

    if _LOWERED[0]:
        return "lowered"
    if not differentiable and _wants_grad([*init_leaves, *xs]):
        return "gradients are wanted through it"
    i = placeholder((), "int64", name="i")
    params = [i, *_params(init_leaves)]
    b = _capture(body, params, lambda ps: body(ps[0], ps[1:]))
    if not differentiable and _wants_grad(b.captures):
        return "gradients are wanted through it"
    (c, new_state, per_step) = _unflatten(b.out_spec, b.outputs, [0])
    for k, (n, o) in enumerate(zip(new_state, init_leaves)):
        if n.shape != o.shape or n.dtype != o.dtype:
            return f"the body turns state {k} from {o.dtype}{list(o.shape)} into {n.dtype}{list(n.shape)}"
    # Outer values the body reads ride along as carried values it passes through unchanged.
    body_out = [c, *new_state, *b.captures, *per_step]
    names = [f"arg{k}" for k in range(len(params))] + [f"capture{k}" for k in range(len(b.captures))]
    g = build_graph(body_out, [f"out{k}" for k in range(len(body_out))], params + b.captures, names)
    if unroll_small and 0 <= trip * len(g.nodes) <= UNROLL_OPS and _wants_grad([*init_leaves, *xs, *b.captures]):
        return _SMALL_ENOUGH
    return list(b.captures), {"body": to_subgraph(g), "trip_count": trip}


def _constant_truth(d: dict, value: int) -> bool:
    """Whether value ``value`` of a described body is a constant true (through reshapes)."""
    consts = dict(d["constants"])
    producer = {o: (op, ins) for op, _, ins, outs in d["nodes"] for o in outs}
    while value not in consts and producer.get(value, ("",))[0] == "reshape":
        value = producer[value][1][0]
    return value in consts and bool(consts[value].read())


def _built(done: Any) -> tuple:
    """A loop the gradient rule builds: _native_loop's result, or an error saying why it has none."""
    if isinstance(done, str):
        raise NotImplementedError(f"grad through a loop op: its gradient loop cannot be built ({done})")
    return done


def loop_vjp(ct: Var, j: int, inputs: list, attrs: dict) -> list:
    """Gradients of output ``j`` of a ``loop`` op (cotangent ``ct``) w.r.t. its inputs: the loop
    runs again keeping each iteration's incoming carried values (those the body changes), then a
    second loop runs the body's vjp from the last iteration to the first.  Only loops of a static
    trip count whose condition stays true (fori_loop, scan) have one."""
    from .autograd import grad
    from .creation import placeholder, zeros
    from .graph_capture import capture_body

    body, trip = attrs["body"], int(attrs["trip_count"])
    cond0, carried = inputs[0], list(inputs[1:])
    n = len(carried)
    d = body.describe()
    always = _constant_truth(d, d["outputs"][0]) and not cond0._from_placeholder and bool(cond0.read())
    if trip < 0 or not always:
        raise NotImplementedError(
            "grad: reverse-mode gradients cannot flow through a loop whose trip count depends on values "
            "(while_loop); use fori_loop with int bounds or scan")
    flt = [k for k in range(n) if carried[k].dtype.is_floating]
    out: list = [None] * len(inputs)
    y = j - n if j >= n else None  # the per-step output ct belongs to (else carried value j)
    if trip == 0:  # the loop returned its inputs
        if y is None:
            out[1 + j] = ct
        return out
    varying = [k for k in range(n) if d["outputs"][1 + k] != d["inputs"][1 + k]]  # the rest pass through

    def forward(i: Var, state: list) -> tuple:
        outs = body.run([i, *state])
        return outs[0], outs[1:1 + n], [state[k] for k in varying]
    stacks = dict(zip(varying, _built(_native_loop(forward, carried, cond0, trip, unroll_small=False))[1]))

    params = [placeholder((), "int64", name="i"), *_params(carried),
              *[placeholder(carried[k].shape, carried[k].dtype, name=f"ct{k}") for k in flt]]
    if y is not None:
        params.append(placeholder(ct.shape[1:], ct.dtype, name="ct_step"))
    for k in flt:
        params[1 + k].requires_grad = True

    def step_vjp(ps: list) -> list:  # (i, carried..., cts...) -> grads of the carried floats
        c, cts = ps[1:1 + n], ps[1 + n:]
        outs = body.run([ps[0], *c])
        pairs = [(outs[1 + k], s) for k, s in zip(flt, cts)]
        if y is not None:
            pairs.append((outs[1 + n + y], cts[-1]))
        pairs = [(t, s) for t, s in pairs if t.requires_grad]
        if not pairs:
            return [zeros(c[k].shape, c[k].dtype) for k in flt]
        return grad([t for t, _ in pairs], [c[k] for k in flt], grad_outputs=[s for _, s in pairs])
    vb = capture_body(step_vjp, params, step_vjp)
    vjp_graph = vb.subgraph()

    def backward(r: Var, state: list) -> tuple:
        i = (trip - 1) - r
        c = [stacks[k][i] if k in stacks else carried[k] for k in range(n)]
        extra = [ct[i]] if y is not None else []
        return asarray(True), list(vjp_graph.run([i, *c, *state, *extra, *vb.captures])), []
    init = [ct if k == j else zeros(carried[k].shape, carried[k].dtype) for k in flt]
    for k, g in zip(flt, _built(_native_loop(backward, init, asarray(True), trip, unroll_small=False))[0]):
        out[1 + k] = g
    return out


def while_loop(cond_fn: Callable, body_fn: Callable, init: Any) -> Any:
    """Repeats ``state = body_fn(state)`` while ``cond_fn(state)`` holds; returns the state.

    A ``loop`` op whose trip count depends on values (rolled inside ``compile`` and export).
    Reverse-mode gradients cannot flow through it: ``grad`` raises, naming ``fori_loop`` and
    ``scan`` (static trip counts), which have them.  In eager mode the functions run directly
    and the state's values are theirs.

    >>> import mnn_expr as F
    >>> F.while_loop(lambda s: s < 100, lambda s: s * 3, F.array(1.0)).item()
    243.0
    """
    leaves: list = []
    spec = _spec_or_none(init, leaves)

    def body(i: Var, state: list) -> tuple:
        new = body_fn(_unflatten(spec, state, [0]))
        new_leaves: list = []
        if _leaves(new, new_leaves) != spec:
            raise TypeError("while_loop: body_fn must return the structure of init")
        return _truth(cond_fn(new)), new_leaves, []
    if _executor.is_tracing():
        done = _native_loop(body, leaves, _truth(cond_fn(init)), -1, differentiable=False)
        if done == "lowered":
            raise NotImplementedError("while_loop: this consumer wants control flow lowered to plain ops (no graph "
                                      "bodies), and a loop whose trip count depends on values cannot be unrolled")
        if isinstance(done, str) and done.startswith("gradients"):
            raise NotImplementedError(
                "while_loop: reverse-mode gradients cannot flow through a loop whose trip count depends on values; "
                "use fori_loop with int bounds or scan (their loops unroll where gradients are wanted)")
        if isinstance(done, str):
            raise TypeError(f"while_loop: {done}; a loop must keep its state's dtypes and shapes")
        return _unflatten(spec, done[0], [0])
    if spec is not None and _lazy_node_wanted(leaves):
        done = _lazy_loop("while_loop", (cond_fn, body_fn), body, leaves, lambda: _truth(cond_fn(init)), -1)
        if done is not _FAILED:
            return _unflatten(spec, done[0], [0])
    c0 = cond_fn(init)
    c, state, rec, step = c0, init, None, 0
    while _concrete(c, "while_loop"):
        state = body_fn(state)
        if step == 0 and spec is not None:
            first: list = []
            try:
                _leaves(state, first)
            except TypeError:
                first = []
            rec = _start_record("while_loop", (cond_fn, body_fn), body, spec, leaves, _truth(c0), -1, [c0, *first])
            if rec is not None:
                break
        step += 1
        c = cond_fn(state)
    if rec is None:
        return state
    with _quiet():
        state = rec.detach(state, 0)
        step = 1
        while _concrete(cond_fn(state), "while_loop"):
            state = rec.detach(body_fn(state), step)
            step += 1
    return rec.finish(state, [])[0]


def _truth(c: Any) -> Var:
    """A loop condition as a 0-d bool Var."""
    c = asarray(c)
    if c.size != 1:
        raise ValueError(f"while_loop: the condition must have one element, got shape {c.shape}")
    return c.reshape(()).astype("bool")


def fori_loop(lower: int, upper: int, body_fn: Callable, init: Any) -> Any:
    """``state = body_fn(i, state)`` for ``i`` in ``range(lower, upper)``; returns the state.

    A ``loop`` op of a static trip count (gradients flow through it); inside ``compile`` small
    loops whose gradients are wanted unroll.  Var bounds are read (so not while tracing).  In
    eager mode ``body_fn`` runs directly with Python int indices; its traced body sees ``i`` as
    an int64 Var.

    >>> import mnn_expr as F
    >>> F.fori_loop(1, 4, lambda i, x: x * i, F.array(1.0)).item()
    6.0
    """
    lo, hi = (int(_bound(b, "fori_loop")) for b in (lower, upper))
    if hi <= lo:
        return init
    leaves: list = []
    spec = _spec_or_none(init, leaves)
    if spec is None and _executor.is_tracing():
        spec = _leaves(init, leaves)  # (raises: the state must be Vars)

    def body(i: Var, state: list) -> tuple:
        new_leaves: list = []
        if _leaves(body_fn(i + lo, _unflatten(spec, state, [0])), new_leaves) != spec:
            raise TypeError("fori_loop: body_fn must return the structure of init")
        return asarray(True), new_leaves, []
    if _executor.is_tracing():
        done = _native_loop(body, leaves, asarray(True), hi - lo)
        if not isinstance(done, str):
            return _unflatten(spec, done[0], [0])
    elif spec is not None and _lazy_node_wanted(leaves):
        done = _lazy_loop("fori_loop", (body_fn,), body, leaves, asarray(True), hi - lo)
        if done is not _FAILED:
            return _unflatten(spec, done[0], [0])
    state = body_fn(lo, init)
    rec = None
    if spec is not None and not _executor.is_tracing() and not _executor.is_lazy():
        first: list = []
        try:
            _leaves(state, first)
        except TypeError:
            first = []
        rec = _start_record("fori_loop", (body_fn,), body, spec, leaves, asarray(True), hi - lo, first)
    if rec is None:
        for i in range(lo + 1, hi):
            state = body_fn(i, state)
        return state
    with _quiet():
        state = rec.detach(state, 0)
        for i in range(lo + 1, hi):
            state = rec.detach(body_fn(i, state), i - lo)
    return rec.finish(state, [])[0]


def _bound(b: Any, what: str) -> int:
    if isinstance(b, Var):
        if _executor.is_tracing():
            raise NotImplementedError(f"{what}: a bound that is a Var is symbolic inside compile; pass an int")
        return int(b.read().item())
    return int(b)


def scan(fn: Callable, init: Any, xs: Any = None, length: int | None = None) -> tuple:
    """Loops ``carry, y = fn(carry, x)`` over the leading axis of ``xs``; returns ``(carry, ys)``.

    ``xs`` is a Var, a list/tuple/dict of Vars sharing the leading length, or None (then
    ``length`` steps with ``x = None``).  ``ys`` stacks the per-step ``y`` along a new
    leading axis (None when ``fn`` returns None).  A ``loop`` op of a static trip count with
    per-step outputs: gradients flow through it (inside ``compile`` short scans whose gradients
    are wanted unroll).  In eager mode ``fn`` runs directly, step by step.

    >>> import mnn_expr as F
    >>> carry, ys = F.scan(lambda c, x: (c + x, c * x), F.array(0.0), F.array([1.0, 2.0, 3.0]))
    >>> carry.item(), ys.tolist()
    (6.0, [0.0, 2.0, 9.0])
    """
    from .movement import stack

    x_leaves: list = []
    x_spec = _leaves(xs, x_leaves) if xs is not None else None
    lengths = {int(v.shape[0]) for v in x_leaves if v.ndim > 0}
    if any(v.ndim == 0 for v in x_leaves):
        raise ValueError("scan: every xs must have a leading axis to scan over")
    if xs is not None and len(lengths) != 1:
        raise ValueError(f"scan: the xs must share their leading length, got {sorted(lengths)}")
    n = lengths.pop() if xs is not None else length
    if n is None:
        raise ValueError("scan: pass xs or length")
    if length is not None and int(length) != n:
        raise ValueError(f"scan: length {length} does not match the xs' leading length {n}")
    if _executor.is_tracing() and n > 0:
        done = _native_scan(fn, init, x_leaves, x_spec, n)
        if done is not None:
            return done
    c_leaves: list = []
    c_spec = _spec_or_none(init, c_leaves)
    if n > 0 and c_spec is not None and _lazy_node_wanted([*c_leaves, *x_leaves]):
        done = _traced(lambda: _native_scan(fn, init, x_leaves, x_spec, n, unroll_small=False))
        if done is not None and not isinstance(done, Exception):
            return done
        _fallback("scan", (fn,), done if done is not None else "the body changes its carry's dtypes or shapes")
    carry = init
    ys: list = []
    y_spec = None
    rec = None
    try:
        for t in range(n):
            x_t = _unflatten(x_spec, [v[t] for v in x_leaves], [0]) if xs is not None else None
            carry, y = fn(carry, x_t)
            y_leaves: list = []
            spec = _leaves(y, y_leaves)
            if y_spec is None:
                y_spec = spec
            elif spec != y_spec:
                raise TypeError(f"scan: fn returned {spec} at step {t} but {y_spec} at step 0")
            if t == 0 and c_spec is not None and not _executor.is_tracing() and not _executor.is_lazy():
                first: list = []
                _spec_or_none(carry, first)
                body = _scan_body(fn, c_spec, x_leaves, x_spec, [])
                rec = _start_record("scan", (fn,), body, c_spec, c_leaves, asarray(True), n, [*first, *y_leaves])
                if rec is not None:
                    _QUIET[0] += 1  # (the later steps record nothing: the loop node stands for them)
            if rec is not None:
                carry = rec.detach(carry, t)
                y_leaves = [_native.value_only(v) for v in y_leaves]
            ys.append(y_leaves)
    finally:
        if rec is not None:
            _QUIET[0] -= 1
    if n == 0:
        return carry, None
    stacked = [stack([step[i] for step in ys], axis=0) for i in range(len(ys[0]))]
    if rec is not None:
        carry, stacked = rec.finish(carry, stacked)
    return carry, _unflatten(y_spec, stacked, [0])


def _scan_body(fn: Callable, c_spec: Any, x_leaves: list, x_spec: Any, y_spec: list) -> Callable:
    """scan's step as a loop body (i, carry leaves) -> (True, new carry leaves, y leaves); the
    structure of y is appended to ``y_spec``."""
    def body(i: Var, state: list) -> tuple:
        x_t = _unflatten(x_spec, [v[i] for v in x_leaves], [0]) if x_spec is not None else None
        carry, y = fn(_unflatten(c_spec, state, [0]), x_t)
        new_leaves: list = []
        y_leaves: list = []
        if _leaves(carry, new_leaves) != c_spec:
            raise TypeError("scan: fn must return a carry of the structure of init")
        y_spec.append(_leaves(y, y_leaves))
        return asarray(True), new_leaves, y_leaves
    return body


def _native_scan(fn: Callable, init: Any, x_leaves: list, x_spec: Any, n: int, unroll_small: bool = True) -> Any:
    """``scan`` as a ``loop`` op with per-step outputs; None when it must unroll."""
    c_leaves: list = []
    c_spec = _leaves(init, c_leaves)
    y_spec: list = []
    done = _native_loop(_scan_body(fn, c_spec, x_leaves, x_spec, y_spec), c_leaves, asarray(True), n, x_leaves,
                        unroll_small=unroll_small)
    if isinstance(done, str):
        return None
    return _unflatten(c_spec, done[0], [0]), _unflatten(y_spec[0], done[1], [0])
