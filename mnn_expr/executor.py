"""Eager and lazy evaluation, threads, and plan-cache statistics.

Eager (the default) computes every op at once.  Lazy mode records ops and
computes a value when it is read (``read()``, ``numpy()``, printing), running
the whole pending subgraph in one native call with a plan cached by the
graph's structure.

>>> import mnn_expr as F
>>> with F.lazy_eval(True):
...     y = F.arange(4.0) * 2 + 1   # recorded, not computed
...     y.read().tolist()
[1.0, 3.0, 5.0, 7.0]
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional

from . import _native


class lazy_eval:  # noqa: N801  (MNN's spelling; also a context manager)
    """Switches lazy evaluation on or off (MNN: ``F.lazy_eval(True)``).

    Used as a plain call it changes the mode for good; used in a ``with``
    block it restores the previous mode on exit.
    """

    def __init__(self, lazy: bool = True) -> None:
        self.previous = _native.is_lazy()
        _native.set_lazy(bool(lazy))

    def __enter__(self) -> lazy_eval:
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        _native.set_lazy(self.previous)

    def __bool__(self) -> bool:  # `if F.lazy_eval(...)` reads the previous mode
        return self.previous


def is_lazy() -> bool:
    """True when ops are recorded rather than computed."""
    return _native.is_lazy()


def eager() -> lazy_eval:
    """Context manager that evaluates eagerly inside its block."""
    return lazy_eval(False)


def lazy() -> lazy_eval:
    """Context manager that evaluates lazily inside its block."""
    return lazy_eval(True)


def set_thread_number(n: int) -> None:
    """Sets the number of CPU threads the native kernels use (MNN spelling)."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_thread_number: expected an int, got {n!r}")
    _native.set_thread_number(n.__index__())


def get_thread_number() -> int:
    """Number of CPU threads the native kernels use."""
    return _native.get_thread_number()


def evaluate(*vars) -> None:
    """Computes the given Vars together (one native call for their pending subgraph).

    While :func:`mnn_expr.compile` traces a function, this does nothing: the values are
    symbolic until the compiled program runs.
    """
    if _TRACE_DEPTH[0]:
        return
    _native.evaluate(list(vars))


_TRACE_DEPTH = [0]  # > 0 while compile() traces a function
_DYNAMIC_DEPTH = [0]  # > 0 while it traces for dynamic dims


class _tracing:  # noqa: N801  (a context manager used by compile)
    def __init__(self, dynamic: bool = False) -> None:
        self.dynamic = dynamic

    def __enter__(self) -> None:
        _TRACE_DEPTH[0] += 1
        _DYNAMIC_DEPTH[0] += self.dynamic

    def __exit__(self, *exc: Any) -> None:
        _TRACE_DEPTH[0] -= 1
        _DYNAMIC_DEPTH[0] -= self.dynamic


def is_tracing() -> bool:
    """True while :func:`mnn_expr.compile` traces a function (values are symbolic then)."""
    return _TRACE_DEPTH[0] > 0


def is_tracing_dynamic() -> bool:
    """True while :func:`mnn_expr.compile` traces for ``dynamic_axes``: the graph must not bake
    in sizes (gradient rules then broadcast with ``broadcast_like`` and count at run time)."""
    return _DYNAMIC_DEPTH[0] > 0


def set_memory_planning(on: bool) -> None:
    """Switches the lazy executor's memory planner on (the default) or off.

    On, a plan's intermediates share one arena at offsets planned from their lifetimes;
    off, each gets a buffer of its own (for comparison and tests).
    """
    _native.set_memory_planning(bool(on))


def memory_planning_enabled() -> bool:
    """Whether lazy plans use the arena memory planner."""
    return _native.memory_planning_enabled()


def set_pass(name: str, on: bool) -> None:
    """Switches one graph pass of the lazy executor on (the default) or off.

    The passes rewrite a plan's schedule when it is built (lazy reads and
    :func:`mnn_expr.compile` alike): ``"simplify"`` (``x*1``, ``x/1``, ``x-0``,
    reshape/transpose/cast identities and chains), ``"cse"`` (one step computes
    equal expressions; random draws never merge) and ``"dce"`` (steps no result
    needs are dropped).  Results are bit-identical with a pass on or off.

    >>> import mnn_expr as F
    >>> F.set_pass("cse", False)
    >>> F.passes()["cse"]
    False
    >>> F.set_pass("cse", True)
    """
    if not isinstance(name, str):
        raise TypeError(f"set_pass: the pass name must be a str, got {type(name).__name__}")
    _native.set_pass(name, bool(on))


def passes() -> dict[str, bool]:
    """Each graph pass's name (in the order they run) and whether it is on.

    >>> import mnn_expr as F
    >>> sorted(F.passes())
    ['conv_epilogue', 'cse', 'dce', 'matmul_epilogue', 'simplify']
    """
    return {name: _native.pass_enabled(name) for name in _native.pass_names()}


class passes_disabled:  # noqa: N801  (a context manager, named like lazy_eval)
    """Switches the named graph passes (all of them when none is named) off inside a ``with`` block.

    >>> import mnn_expr as F
    >>> with F.passes_disabled("cse", "dce"):
    ...     F.passes()["cse"], F.passes()["simplify"]
    (False, True)
    >>> F.passes()["cse"]
    True
    """

    def __init__(self, *names: str) -> None:
        known = _native.pass_names()
        for n in names:
            if n not in known:
                raise ValueError(f"passes_disabled: unknown pass {n!r}; the passes are {', '.join(known)}")
        self.names = tuple(names) if names else tuple(known)
        self.previous: dict[str, bool] = {}

    def __enter__(self) -> passes_disabled:
        self.previous = passes()
        for n in self.names:
            _native.set_pass(n, False)
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        for n, on in self.previous.items():
            _native.set_pass(n, on)


class use_backend:  # noqa: N801  (a context manager, named like lazy_eval)
    """Runs planned graphs (lazy reads, compiled programs) on a device backend inside a ``with``
    block: the steps it supports run there, the rest on the CPU, with a copy wherever a value
    crosses (``native/src/backend/backend.h``).  ``"null"`` is the test device (host memory and
    the CPU's kernels, counting launches and copied bytes; ``ops`` limits what it takes, by
    primitive name); ``"cpu"`` means none.  Eager ops run on the CPU.

    >>> import mnn_expr as F
    >>> with F.use_backend("null"), F.lazy_eval(True):
    ...     y = (F.ones(4) * 2 + 1).read()
    ...     F.backend_stats()["launches"]
    2
    """

    def __init__(self, name: str, ops: Optional[list] = None) -> None:
        self.name, self.ops = name, list(ops or [])

    def __enter__(self) -> None:
        self.saved = _native.backend_name()
        _native.set_backend(self.name, self.ops)

    def __exit__(self, *exc: Any) -> None:
        _native.set_backend("cpu" if self.saved == "cpu" else self.saved)


def backend_stats() -> dict[str, int]:
    """What the current device backend did since it was set: ``launches``, ``bytes_uploaded``
    (host to device), ``bytes_downloaded`` (device to host); zeros for the CPU."""
    return _native.backend_stats()


def last_plan_passes() -> dict[str, int]:
    """What the graph passes did for the last plan evaluated on this thread.

    ``simplify``: rewrites; ``cse``: steps merged into an earlier equal one; ``dce``: steps
    dropped because no result needs them; ``guards``: facts beyond the graph's structure
    (attribute values, a scalar constant being 1) the plan relies on — when one stops
    holding, the plan is rebuilt; ``conv_epilogue``: elementwise steps (relu, add, maximum,
    ...) fused into the convolution before them, applied to its output tiles in cache;
    ``matmul_epilogue``: the same for a matmul (a Linear layer's bias add and activation),
    applied as the GEMM stores its tiles.
    """
    return _native.last_plan_passes()


def last_plan_memory() -> dict:
    """Memory of the last plan evaluated on this thread.

    ``arena_bytes``: the planned peak of its intermediates (one arena);
    ``unplanned_bytes``: what those intermediates take each in a buffer of its own;
    ``planned_values``: how many they are; ``result_bytes``: the values read out;
    ``in_place``: how many were computed over the region of an input whose last reader
    they are (elementwise ops).
    (Intermediates of fused elementwise passes live in block buffers and are not counted.)
    """
    return _native.last_plan_memory()


def plan_cache_stats() -> dict:
    """``{"hits", "misses", "size"}`` of the lazy executor's plan cache."""
    return _native.plan_cache_stats()


def clear_plan_cache() -> None:
    """Forgets every cached lazy plan."""
    _native.clear_plan_cache()
