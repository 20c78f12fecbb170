"""Control flow: ``cond``, ``while_loop``, ``fori_loop``, ``scan`` (JAX's signatures).

Outside :func:`mnn_expr.compile` and export they run the Python functions directly (a
predicate that is a Var is read), so the ops they record are ordinary graph ops and
gradients flow through the branch taken and through every iteration.

While ``compile`` or ``mnn_nn.export`` traces, they become graph ops holding graph bodies
(the ``if`` and ``loop`` primitives, MNN's ``If``/``While``, ONNX's ``If``/``Loop``): the
branches and the loop body are traced once into bodies (outer values they read become
extra inputs), so loops stay rolled in compiled and exported programs and ``while_loop``
works there too.  Both branches must give results of the same structure, shapes and dtypes;
a loop must keep its state's shapes and dtypes.  Where gradients are wanted (a value
that requires them flows in), ``cond`` selects with ``where`` and ``fori_loop``/``scan``
unroll instead, so ``grad`` sees ordinary ops; ``while_loop`` then raises (its trip count
is not static: use ``fori_loop`` or ``scan``).  A ``fori_loop`` body that changes its
state's dtype for an index Var (``acc + i``) is unrolled as well.

>>> import mnn_expr as F
>>> F.cond(F.array(2.0) > 1, lambda x: x * 10, lambda x: x, F.array(3.0)).item()
30.0
>>> F.fori_loop(0, 4, lambda i, acc: acc + i, F.array(0.0)).item()
6.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _native
from . import executor as _executor
from ._native import Var
from .compile import _flatten, _unflatten
from .creation import asarray

__all__ = ["cond", "while_loop", "fori_loop", "scan", "lowered", "for_inference"]

_LOWERED = [0]  # > 0: build where/unrolled ops instead of if/loop while tracing
_INFERENCE = [0]  # > 0: no gradient will be taken of what is traced (export): keep if/loop ops
# Where gradients are wanted through fori_loop/scan, a loop whose unrolled graph stays under this many
# ops unrolls (one fused, planned graph: a rolled loop runs its body's plan per iteration, and its
# gradient recomputes the forward: a 20-step RNN step 1.0 ms unrolled, 4.2 ms rolled); longer ones
# stay rolled and differentiate with the loop rule.
UNROLL_OPS = 4096


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

    Inside ``compile`` (or export) with a traced predicate, both branches are traced into the
    bodies of one ``if`` op, which runs only the branch taken; gradients flow through it (its
    vjp is an ``if`` of the branches' vjps).

    >>> import mnn_expr as F
    >>> F.cond(False, lambda x: x + 1, lambda x: x - 1, F.array(1.0)).item()
    0.0
    """
    traced = isinstance(pred, Var) and _executor.is_tracing()
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


def _native_cond(p: Var, true_fn: Callable, false_fn: Callable, operands: tuple) -> Any:
    """``cond`` as an ``if`` op with both branches as bodies (its gradient is an ``if`` of their
    vjps); None when the consumer wants control flow lowered."""
    from .graph_capture import capture_body

    leaves: list = []
    spec = _leaves(operands, leaves)
    if _LOWERED[0]:
        return None

    def call(fn: Callable) -> Callable:
        return lambda ps: fn(*_unflatten(spec, ps, [0]))
    t = capture_body(true_fn, _params(leaves), call(true_fn))
    f = capture_body(false_fn, _params(leaves), call(false_fn))
    if t.out_spec != f.out_spec:
        raise TypeError(f"cond: inside compile both branches must return the same structure, got {t.out_spec} and "
                        f"{f.out_spec}")
    for i, (a, b) in enumerate(zip(t.outputs, f.outputs)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise TypeError(f"cond: inside compile result {i} of the branches differs: {a.shape} {a.dtype} vs "
                            f"{b.shape} {b.dtype}")
    caps = _union(t.captures, f.captures)
    outs = _native.apply("if", [p, *leaves, *caps], {"then_graph": t.subgraph(caps), "else_graph": f.subgraph(caps)})
    return _unflatten(t.out_spec, outs, [0])


def _native_loop(body: Callable, init_leaves: list, cond0: Var, trip: int, xs: list = (),
                 differentiable: bool = True, unroll_small: bool = True) -> Any:
    """A ``loop`` op: ``body(i, state_leaves, xs) -> (cond, new_state_leaves, per_step_leaves)`` traced once.
    Returns (final state leaves, stacked per-step leaves), or a string saying why it cannot be one:
    lowering was asked for, gradients are wanted through a loop that is not ``differentiable``
    (its trip count depends on values) or that is small enough to unroll (``unroll_small``, see
    UNROLL_OPS), or the body changes the state's dtypes/shapes."""
    from .creation import placeholder
    from .graph_capture import build_graph, capture_body, to_subgraph

    if _LOWERED[0]:
        return "lowered"
    if not differentiable and _wants_grad([*init_leaves, *xs]):
        return "gradients are wanted through it"
    i = placeholder((), "int64", name="i")
    params = [i, *_params(init_leaves)]
    b = capture_body(body, params, lambda ps: body(ps[0], ps[1:]))
    if not differentiable and _wants_grad(b.captures):
        return "gradients are wanted through it"
    (c, new_state, per_step) = _unflatten(b.out_spec, b.outputs, [0])
    for k, (n, o) in enumerate(zip(new_state, init_leaves)):
        if n.shape != o.shape or n.dtype != o.dtype:
            return f"the body turns state {k} from {o.dtype}{list(o.shape)} into {n.dtype}{list(n.shape)}"
    # Outer values the body reads ride along as carried values it passes through unchanged.
    n = len(init_leaves)
    body_out = [c, *new_state, *b.captures, *per_step]
    names = [f"arg{k}" for k in range(len(params))] + [f"capture{k}" for k in range(len(b.captures))]
    g = build_graph(body_out, [f"out{k}" for k in range(len(body_out))], params + b.captures, names)
    if unroll_small and 0 <= trip * len(g.nodes) <= UNROLL_OPS and _wants_grad([*init_leaves, *xs, *b.captures]):
        return "small enough to unroll where gradients are wanted"
    graph = to_subgraph(g)
    outs = _native.apply("loop", [cond0, *init_leaves, *b.captures], {"body": graph, "trip_count": trip})
    return outs[:n], outs[n + len(b.captures):]


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

    The trip count depends on values, so it cannot be traced by ``compile`` (use
    ``fori_loop`` with int bounds there).  Outside compile every iteration's ops are
    recorded, so gradients flow through the iterations taken.

    >>> import mnn_expr as F
    >>> F.while_loop(lambda s: s < 100, lambda s: s * 3, F.array(1.0)).item()
    243.0
    """
    if _executor.is_tracing():
        leaves: list = []
        spec = _leaves(init, leaves)

        def body(i: Var, state: list) -> tuple:
            new = body_fn(_unflatten(spec, state, [0]))
            new_leaves: list = []
            if _leaves(new, new_leaves) != spec:
                raise TypeError("while_loop: body_fn must return the structure of init")
            return _truth(cond_fn(new)), new_leaves, []
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
    state = init
    while _concrete(cond_fn(state), "while_loop"):
        state = body_fn(state)
    return state


def _truth(c: Any) -> Var:
    """A loop condition as a 0-d bool Var."""
    c = asarray(c)
    if c.size != 1:
        raise ValueError(f"while_loop: the condition must have one element, got shape {c.shape}")
    return c.reshape(()).astype("bool")


def fori_loop(lower: int, upper: int, body_fn: Callable, init: Any) -> Any:
    """``state = body_fn(i, state)`` for ``i`` in ``range(lower, upper)``; returns the state.

    Int bounds unroll inside ``compile``; Var bounds are read (so not while tracing).

    >>> import mnn_expr as F
    >>> F.fori_loop(1, 4, lambda i, x: x * i, F.array(1.0)).item()
    6.0
    """
    lo, hi = (int(_bound(b, "fori_loop")) for b in (lower, upper))
    if _executor.is_tracing() and hi > lo:
        leaves: list = []
        spec = _leaves(init, leaves)

        def body(i: Var, state: list) -> tuple:
            new_leaves: list = []
            if _leaves(body_fn(i + lo, _unflatten(spec, state, [0])), new_leaves) != spec:
                raise TypeError("fori_loop: body_fn must return the structure of init")
            return asarray(True), new_leaves, []
        done = _native_loop(body, leaves, asarray(True), hi - lo)
        if not isinstance(done, str):
            return _unflatten(spec, done[0], [0])
    state = init
    for i in range(lo, hi):
        state = body_fn(i, state)
    return state


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
    leading axis (None when ``fn`` returns None).  The length is static, so it unrolls
    inside ``compile``; gradients flow through every step.

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
    carry = init
    ys: list = []
    y_spec = None
    for t in range(n):
        x_t = _unflatten(x_spec, [v[t] for v in x_leaves], [0]) if xs is not None else None
        carry, y = fn(carry, x_t)
        y_leaves: list = []
        spec = _leaves(y, y_leaves)
        if y_spec is None:
            y_spec = spec
        elif spec != y_spec:
            raise TypeError(f"scan: fn returned {spec} at step {t} but {y_spec} at step 0")
        ys.append(y_leaves)
    if n == 0 or not ys[0]:
        return carry, None if n == 0 else _unflatten(y_spec, [], [0])
    stacked = [stack([step[i] for step in ys], axis=0) for i in range(len(ys[0]))]
    return carry, _unflatten(y_spec, stacked, [0])


def _native_scan(fn: Callable, init: Any, x_leaves: list, x_spec: Any, n: int) -> Any:
    """``scan`` as a ``loop`` op with per-step outputs; None when it must unroll."""
    c_leaves: list = []
    c_spec = _leaves(init, c_leaves)
    y_spec: list = []

    def body(i: Var, state: list) -> tuple:
        x_t = _unflatten(x_spec, [v[i] for v in x_leaves], [0]) if x_spec is not None else None
        carry, y = fn(_unflatten(c_spec, state, [0]), x_t)
        new_leaves: list = []
        y_leaves: list = []
        if _leaves(carry, new_leaves) != c_spec:
            raise TypeError("scan: fn must return a carry of the structure of init")
        y_spec.append(_leaves(y, y_leaves))
        return asarray(True), new_leaves, y_leaves
    done = _native_loop(body, c_leaves, asarray(True), n, x_leaves)
    if isinstance(done, str):
        return None
    return _unflatten(c_spec, done[0], [0]), _unflatten(y_spec[0], done[1], [0])
