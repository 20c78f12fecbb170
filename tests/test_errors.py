"""Errors are for people (DESIGN §10): invalid arguments to any op raise a Python
exception that names the op; nothing crashes the process.

The property test fuzzes EVERY primitive of the native op table (picked up from
``_native.op_table()``, so ops merged later are covered automatically) with
hypothesis-drawn input lists (wrong counts, random shapes incl. 0-d, size-0 and
huge or negative dims, every dtype, junk Python objects) and attribute dicts
(right and wrong types per the op's schema, out-of-range and huge values, empty
lists, unknown and missing keys).  Each example goes through ``_native.infer``
(the shape rule alone, so huge shapes cost nothing) or ``_native.apply`` eagerly
and lazily.  A call must either succeed, with outputs consistent with the shape
rule and identical in eager and lazy mode, or raise ValueError / TypeError /
IndexError whose message names the op (MemoryError only for outputs of at least
2**50 bytes).

A native crash kills the process, so the fuzz runs in a subprocess (this module
run as a script); the parent reads which op was running when the child died and
restarts the child on the remaining ops, so a segfault shows up as the failing
test ``test_fuzz_op[<op>]`` with the last call's arguments.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mnn_expr as F
from mnn_expr import _native

ROOT = Path(__file__).resolve().parent.parent
OPS = [row[0] for row in _native.op_table()]
CPP_NAMES = {row[0]: row[1] for row in _native.op_table()}
DTYPES = ("bool", "int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64")
ITEMSIZE = {d: 2 if d == "bfloat16" else np.dtype(d).itemsize for d in DTYPES}
ALLOWED = (ValueError, TypeError, IndexError)

CI = bool(os.environ.get("CI"))
EXAMPLES_PER_OP = int(os.environ.get("MNN_FUZZ_EXAMPLES", "40" if CI else "120"))
FUZZ_SEED = int(os.environ.get("MNN_FUZZ_SEED", "20240611"))
PER_OP_TIMEOUT_S = 60
SMALL_BYTES = 64 << 20  # apply() is only run when its outputs take at most this much ...
HUGE_BYTES = 1 << 50  # ... or at least this much (then allocation must fail cleanly: MemoryError)
INT64_MAX = 2**63 - 1


def names_op(op: str, msg: str) -> bool:
    low = msg.lower()
    return op.lower() in low or CPP_NAMES.get(op, op).lower() in low


# =============================================================================
# The fuzz driver (runs in the child process)
# =============================================================================


class FuzzProblem(AssertionError):
    """A contract violation found by the fuzz (not a crash)."""


def _exact_numel(shape: Any) -> int:
    return math.prod(int(d) for d in shape)


def _fuzz_strategies():
    """Hypothesis strategies, built lazily so importing this module stays cheap."""
    from hypothesis import strategies as st

    HUGE = (2**31, 2**32 + 1, 2**40, 2**62, INT64_MAX)
    NEG = (-1, -2, -7)
    JUNK = tuple("none str ragged object pyfloat pyint pybool dict complex uint16 strarray nested".split())

    @st.composite
    def shape_of(draw, base, huge_ok, neg_ok, big):
        kinds = ["related"] * 5 + ["free"] * 3 + (["huge", "bomb"] * (4 if big else 1) if huge_ok else [])
        kind = draw(st.sampled_from(kinds + (["neg"] if neg_ok else [])))
        if kind == "related" and base is not None:
            drop = draw(st.integers(0, len(base)))
            out = [d if draw(st.integers(0, 3)) else 1 for d in base[drop:]]
            if draw(st.integers(0, 5)) == 0:
                out = [1] * draw(st.integers(0, 2)) + out
            return tuple(out)
        if kind == "bomb":  # huge along one axis, 1 elsewhere: two of them broadcast to huge x huge
            out = [1] * draw(st.integers(1, 3))
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from(HUGE))
            return tuple(out)
        nd = draw(st.integers(0, 5))
        out = [draw(st.integers(0, 5)) for _ in range(nd)]
        if kind == "huge":
            out = out or [1]
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from(HUGE))
            if draw(st.booleans()):
                out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(HUGE + (0,))))
        elif kind == "neg":
            out = out or [1]
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from(NEG))
        return tuple(out)

    @st.composite
    def input_specs(draw, n_in, mode, wild):
        if not wild:
            count = n_in if n_in >= 0 else draw(st.integers(1, 3))
        elif n_in >= 0:
            count = draw(st.sampled_from([n_in] * 3 + [max(n_in - 1, 0), n_in + 1, 0, n_in + 2]))
        else:
            count = draw(st.sampled_from([1, 1, 2, 2, 3, 4, 0]))
        base = tuple(draw(st.integers(0, 5)) for _ in range(draw(st.integers(0, 4))))
        one_dtype = draw(st.sampled_from(DTYPES))
        big = draw(st.integers(0, 3)) == 0  # an example about huge shapes
        specs = []
        for _ in range(count):
            if mode == "apply" and wild and draw(st.integers(0, 5)) == 0:
                specs.append({"junk": draw(st.sampled_from(JUNK))})
                continue
            dt = one_dtype if draw(st.integers(0, 7 if not wild else 2)) else draw(st.sampled_from(DTYPES))
            shp = draw(
                shape_of(base, huge_ok=wild or mode == "infer", neg_ok=wild and mode == "infer", big=big)
            )
            specs.append(
                {
                    "dtype": dt,
                    "shape": list(shp),
                    "placeholder": mode == "apply" and draw(st.integers(0, 15)) == 0,
                }
            )
        return specs

    int_vals = st.one_of(
        st.integers(-6, 6),
        st.integers(-6, 6),
        st.integers(-6, 6),
        st.sampled_from([2**31, 2**40, 2**62, INT64_MAX, -(2**63), -(2**40), 64, 100]),
    )
    float_vals = st.one_of(
        st.floats(-10, 10),
        st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 1e308, -1e-308, 2.0**70]),
    )
    str_vals = st.sampled_from(
        [
            "constant",
            "reflect",
            "edge",
            "symmetric",
            "wrap",
            "none",
            "add",
            "mul",
            "max",
            "min",
            "sum",
            "mean",
            "",
            "nonsense",
            "x" * 300,
            "\x00",
            "CONSTANT",
        ]
    )
    right = {
        "int": int_vals | st.booleans(),
        "bool": st.sampled_from([True, False, 0, 1, 2, -1]),
        "float": float_vals | st.integers(-5, 5),
        "ints": st.one_of(
            st.lists(int_vals, max_size=6), st.lists(int_vals, max_size=6).map(tuple), int_vals, st.just([])
        ),
        "floats": st.lists(float_vals, max_size=6),
        "str": str_vals,
        "dtype": st.sampled_from(DTYPES),
        "graph": st.sampled_from(GRAPH_NAMES),
    }
    wrong = st.sampled_from(
        [
            None,
            "str",
            1.5,
            [1.5],
            ["a"],
            {"a": 1},
            (),
            [[1, 2]],
            2**70,
            -(2**70),
            math.nan,
            b"bytes",
            [2**70],
            [None],
            "float",
            "float33",
            3,
            [1, 2],
            object,
        ]
    )

    @st.composite
    def attr_dicts(draw, schema, wild):
        attrs = {}
        for name, typ, has_default in schema:
            present = not wild or draw(st.integers(0, 9)) < (9 if not has_default else 5)
            if has_default and not wild:
                present = draw(st.booleans())
            if not present:
                continue
            if wild and draw(st.integers(0, 3)) == 0:
                v = draw(wrong)
                attrs[name] = object() if v is object else v
            else:
                attrs[name] = draw(right[typ])
        if wild and draw(st.integers(0, 5)) == 0:
            attrs[draw(st.sampled_from(["bogus", "Axis", "shape_", "x" * 40, "", "dtype", "axis"]))] = draw(
                right["int"] | wrong.filter(lambda v: v is not object)
            )
        return attrs

    @st.composite
    def examples(draw, n_in, schema):
        mode = draw(st.sampled_from(["infer", "apply", "apply"]))
        wild = draw(st.booleans())  # wild: anything goes; tame: right counts, keys and types
        return {
            "mode": mode,
            "wild": wild,
            "inputs": draw(input_specs(n_in, mode, wild)),
            "attrs": draw(attr_dicts(schema, wild)),
            "seed": draw(st.integers(0, 2**32 - 1)),
        }

    return examples


H = 2**40
INT_EXTREMES = (-(2**63), INT64_MAX, 2**40, -5, 5)
# Graph bodies for graph attributes (If/Loop), named so examples stay plain data across processes.
GRAPH_NAMES = ("graph:identity", "graph:empty", "graph:loop_body", "graph:two_in", "graph:bool_out")


def _graph_attr(v: Any) -> Any:
    """The SubGraph a "graph:<name>" example value stands for (other values pass through)."""
    if not (isinstance(v, str) and v.startswith("graph:")):
        return v
    from mnn_expr.graph_capture import build_graph, to_subgraph
    x = F.placeholder([2, 3], "float32", name="x")
    if v == "graph:identity":
        return to_subgraph(build_graph([x * 1.0], ["y"], [x], ["x"]))
    if v == "graph:empty":
        return to_subgraph(build_graph([], [], [], []))
    if v == "graph:two_in":
        y = F.placeholder([3], "int32", name="y")
        return to_subgraph(build_graph([x + F.cast(y, "float32"), y], ["a", "b"], [x, y], ["x", "y"]))
    if v == "graph:bool_out":
        return to_subgraph(build_graph([x > 0], ["b"], [x], ["x"]))
    i = F.placeholder([], "int64", name="i")  # loop_body: (i, x) -> (i < 3, x * 2)
    return to_subgraph(build_graph([i < 3, x * 2.0], ["c", "x2"], [i, x], ["i", "x"]))


EXTREMES = {
    "int": INT_EXTREMES,
    "bool": (2, -1),
    "float": (math.nan, math.inf, -math.inf, 1e308),
    "ints": (
        [],
        [2**62, 2**62],
        [INT64_MAX, 2],
        [-1],
        [-(2**63)],
        [H, H],
        [0] * 7,
        [1] * 9,
        [3, 2, 1, 0],
        [-1, -1],
    ),
    "floats": ([], [math.nan], [1e308, -1e308]),
    "str": ("", "nonsense", "x" * 300),
    "dtype": DTYPES,
    "graph": GRAPH_NAMES,
}
TAME = {
    "int": 0,
    "bool": False,
    "float": 0.0,
    "ints": [1],
    "floats": [0.0],
    "str": "none",
    "dtype": "float32",
    "graph": "graph:identity",
}


def _explicit_examples(n_in: int, schema: list) -> list[dict]:
    """Systematic nasty cases for one op, run before the random ones: huge, overflowing, 0-d, size-0 and
    negative shapes through the shape rule; every attribute at its extremes, with small real inputs."""
    k = n_in if n_in >= 0 else 2
    base = {name: TAME[typ] for name, typ, _ in schema}

    def ex(mode, shapes, attrs=None, dtypes=None):
        dtypes = dtypes or ["float32"] * len(shapes)
        return {
            "mode": mode,
            "wild": False,
            "seed": 0,
            "attrs": dict(base if attrs is None else attrs),
            "inputs": [{"dtype": d, "shape": list(s), "placeholder": False} for d, s in zip(dtypes, shapes)],
        }

    bomb = [[H, 1], [1, H]] + [[1]] * max(k - 2, 0) if k >= 2 else [[H]] * k
    out = [
        ex("infer", [[]] * k),
        ex("infer", [[2, 0, 3]] * k),
        ex("infer", [[2, 3, 4, 5]] * k),
        ex("infer", bomb),
        ex("infer", bomb, dtypes=["int32"] * k),
        ex("infer", bomb, dtypes=["bool"] + ["float32"] * (k - 1)),
        ex("infer", [[2**62, 4]] * k),
        ex("infer", [[INT64_MAX]] * k),
        ex("infer", [[-1, 3]] * k),
        ex("infer", [[2, 3]] * k, dtypes=[DTYPES[i % 9] for i in range(k)]),
        ex("infer", [[2, 3]] * (k + 1)),
        ex("apply", [[2, 3]] * (k + 1)),
        ex("apply", [[2, 0, 3]] * k),
        ex("apply", [[]] * k),
        ex("apply", [[2, 3, 4, 5]] * k, dtypes=["bool"] * k),
        ex("apply", [[2, 3, 4, 5]] * k, dtypes=["bfloat16"] * k),
        ex("apply", [[0, 2**62]] * k),
    ]
    if n_in != 0:
        out.append(ex("infer", [[2, 3]] * 0))
    for name, typ, _ in schema:
        for v in EXTREMES[typ]:
            attrs = dict(base, **{name: v})
            out.append(ex("infer", [[2, 3, 4, 5]] * k, attrs))
            out.append(ex("apply", [[2, 3, 4, 5]] * k, attrs))
            out.append(ex("infer", bomb, attrs))
        out.append(ex("apply", [[2, 3, 4, 5]] * k, {n: v for n, v in base.items() if n != name}))
    return out


def _values(rng: np.random.Generator, dtype: str, shape: list) -> np.ndarray:
    """Input values with specials: NaN/inf/-0 for floats, extremes and out-of-range indices for ints."""
    n = _exact_numel(shape)
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if dtype in ("float16", "bfloat16", "float32", "float64"):
        v = rng.normal(0, 3, n)
        if n:
            k = rng.integers(0, max(n // 4, 1) + 1)
            v[rng.integers(0, n, k)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], k)
        npdt = np.float32 if dtype == "bfloat16" else np.dtype(dtype)
        with np.errstate(over="ignore"):
            return v.astype(npdt).reshape(shape)
    info = np.iinfo(np.dtype(dtype))
    lo = max(info.min, -3)
    v = rng.integers(lo, 7, n, endpoint=True)
    out = v.astype(np.dtype(dtype))
    if n:
        k = rng.integers(0, max(n // 4, 1) + 1)
        out[rng.integers(0, n, k)] = rng.choice(np.array([info.min, info.max], dtype=np.dtype(dtype)), k)
    return out.reshape(shape)


def _junk(kind: str) -> Any:
    return {
        "none": None,
        "str": "abc",
        "ragged": [1, [2, 3]],
        "object": object(),
        "pyfloat": 1.5,
        "pyint": 3,
        "pybool": True,
        "dict": {"a": 1},
        "complex": np.zeros(2, np.complex64),
        "uint16": np.arange(3, dtype=np.uint16),
        "strarray": np.array(["a", "b"]),
        "nested": [[1.0, 2.0], [3.0, 4.0]],
    }[kind]


def _realize(spec: dict, rng: np.random.Generator) -> Any:
    """A Var (or junk) for an input spec; None when the spec cannot be built as a Var."""
    if "junk" in spec:
        return _junk(spec["junk"])
    shape, dt = spec["shape"], spec["dtype"]
    n = _exact_numel(shape)
    nbytes = n * ITEMSIZE[dt]
    if any(d < 0 for d in shape) or nbytes > INT64_MAX or max(shape, default=0) > INT64_MAX:
        return None
    if spec["placeholder"] or n > 4096:
        try:
            return _native.placeholder(shape, dt, "p")
        except ALLOWED:
            return None
    if n == 0:
        try:
            arr = np.empty(shape, np.float32 if dt == "bfloat16" else np.dtype(dt))
        except (ValueError, MemoryError):
            return _native.placeholder(shape, dt, "p")
    else:
        arr = _values(rng, dt, shape)
    v = F.array(arr)
    return F.cast(v, "bfloat16") if dt == "bfloat16" else v


def _describe(op: str, ex: dict, mode: str) -> str:
    ins = []
    for s in ex["inputs"]:
        if "junk" in s:
            ins.append(f"<junk {s['junk']}>")
        else:
            ins.append(f"{'placeholder ' if s.get('placeholder') else ''}{s['dtype']}{tuple(s['shape'])}")
    attrs = {
        k: (v if not callable(v) and type(v) is not object else "<object>") for k, v in ex["attrs"].items()
    }
    return f"{mode} {op}([{', '.join(ins)}], attrs={attrs!r})"


def _check_error(op: str, e: BaseException, desc: str, *, junk: bool, memory_ok: bool, where: str) -> None:
    if isinstance(e, MemoryError):
        if not memory_ok:
            raise FuzzProblem(
                f"{where}: MemoryError for outputs well under 2**50 bytes: {e!r}\n  call: {desc}"
            )
        return
    if not isinstance(e, ALLOWED):
        raise FuzzProblem(
            f"{where}: raised {type(e).__name__} (expected ValueError/TypeError/IndexError): "
            f"{e!r}\n  call: {desc}"
        )
    msg = str(e)
    if not msg.strip():
        raise FuzzProblem(f"{where}: {type(e).__name__} with an empty message\n  call: {desc}")
    if not junk and not names_op(op, msg):
        raise FuzzProblem(
            f"{where}: message does not name the op {op!r}: {type(e).__name__}: {msg}\n  call: {desc}"
        )


def _check_infos(op: str, infos: list, n_out: int, desc: str, where: str) -> None:
    if n_out >= 0 and len(infos) != n_out:
        raise FuzzProblem(f"{where}: {len(infos)} outputs, op table declares {n_out}\n  call: {desc}")
    for dt, shape in infos:
        if dt not in DTYPES:
            raise FuzzProblem(f"{where}: output dtype {dt!r} unknown\n  call: {desc}")
        if any(d < 0 for d in shape):
            raise FuzzProblem(
                f"{where}: output shape {tuple(shape)} has a negative dimension\n  call: {desc}"
            )
        nbytes = _exact_numel(shape) * ITEMSIZE[dt]
        if nbytes > INT64_MAX:
            raise FuzzProblem(
                f"{where}: accepted an output {dt}{tuple(shape)} of {nbytes} bytes (> 2**63-1): the "
                f"element count / byte size overflows; the shape rule must raise ValueError\n"
                f"  call: {desc}"
            )


def _read_checked(op: str, v: Any, desc: str, where: str) -> np.ndarray:
    arr = v.read()
    want = np.dtype("float32" if v._dtype_name == "bfloat16" else v._dtype_name)
    if arr.shape != tuple(v.shape) or arr.dtype != want:
        raise FuzzProblem(
            f"{where}: read() gave {arr.dtype}{arr.shape}, Var says {v._dtype_name}{tuple(v.shape)}"
            f"\n  call: {desc}"
        )
    return arr


def _fuzz_example(op: str, n_in: int, n_out: int, ex: dict, mark, stats: dict) -> None:
    attrs = {k: _graph_attr(v) for k, v in ex["attrs"].items()}
    if ex["mode"] == "infer":
        pairs = [(s["dtype"], s["shape"]) for s in ex["inputs"]]
        desc = _describe(op, ex, "infer")
        mark(desc)
        try:
            out = _native.infer(op, pairs, attrs)
        except BaseException as e:  # noqa: BLE001
            _check_error(op, e, desc, junk=False, memory_ok=False, where="infer")
            return
        valid_inputs = all(d >= 0 for _, s in pairs for d in s) and all(
            _exact_numel(s) * ITEMSIZE[dt] <= INT64_MAX for dt, s in pairs
        )
        if valid_inputs:
            _check_infos(op, out, n_out, desc, "infer")
        stats["infer_ok"] += 1
        return

    rng = np.random.default_rng(ex["seed"])
    inputs = [_realize(s, rng) for s in ex["inputs"]]
    if any(v is None and "junk" not in s for v, s in zip(inputs, ex["inputs"])):
        return  # a spec that cannot exist as a Var (its shape is covered by the infer mode)
    junk = any("junk" in s for s in ex["inputs"])
    desc = _describe(op, ex, "apply")
    deferred = any(isinstance(v, F.Var) and not v._computed for v in inputs)
    predicted = None
    if not junk:
        mark("infer-first " + desc)
        try:
            predicted = _native.infer(op, [(v._dtype_name, list(v.shape)) for v in inputs], attrs)
        except BaseException as e:  # noqa: BLE001
            _check_error(op, e, desc, junk=False, memory_ok=False, where="infer")
        if predicted is not None:
            _check_infos(op, predicted, n_out, desc, "infer")
            nbytes = sum(_exact_numel(s) * ITEMSIZE[dt] for dt, s in predicted)
            if SMALL_BYTES < nbytes < HUGE_BYTES and not deferred:
                return  # real but large: do not allocate gigabytes on a shared machine
    memory_ok = (
        predicted is not None and sum(_exact_numel(s) * ITEMSIZE[dt] for dt, s in predicted) >= HUGE_BYTES
    )

    # Eager.
    mark("eager " + desc)
    try:
        with F.lazy_eval(False):
            outs = _native.apply(op, inputs, attrs)
    except BaseException as e:  # noqa: BLE001
        _check_error(op, e, desc, junk=junk, memory_ok=memory_ok, where="eager apply")
        if predicted is not None and isinstance(e, TypeError):
            raise FuzzProblem(
                f"eager apply: the kernel raised TypeError after the shape rule accepted the inputs "
                f"(shape rules must validate dtypes): {e}\n  call: {desc}"
            ) from None
        outs = None
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, F.Var) for o in outs):
            raise FuzzProblem(f"eager apply returned {outs!r}, expected a list of Vars\n  call: {desc}")
        infos = [(o._dtype_name, list(o.shape)) for o in outs]
        _check_infos(op, infos, n_out, desc, "eager apply")
        if predicted is not None and [(d, list(s)) for d, s in predicted] != infos:
            raise FuzzProblem(
                f"eager apply: outputs {infos} differ from the shape rule's {predicted}\n  call: {desc}"
            )
        for o in outs:
            if o.size != _exact_numel(o.shape):
                raise FuzzProblem(
                    f"eager apply: Var.size {o.size} != product of shape {o.shape}\n  call: {desc}"
                )
    if deferred or memory_ok:
        return  # depends on an unwritten placeholder: nothing to compute

    # Lazy: record, then compute in one evaluate(); must agree with eager.
    mark("lazy " + desc)
    try:
        with F.lazy_eval(True):
            louts = _native.apply(op, inputs, attrs)
        F.evaluate(*louts)
        got = [_read_checked(op, o, desc, "lazy read") for o in louts]
    except FuzzProblem:
        raise
    except BaseException as e:  # noqa: BLE001
        _check_error(op, e, desc, junk=junk, memory_ok=False, where="lazy apply/read")
        if outs is not None:
            raise FuzzProblem(
                f"lazy mode raised {type(e).__name__}: {e} where eager mode succeeded\n  call: {desc}"
            ) from None
        return
    if outs is None:
        raise FuzzProblem(f"lazy mode succeeded where eager mode raised\n  call: {desc}")
    for o, lz in zip(outs, got):
        ea = _read_checked(op, o, desc, "eager read")
        if not np.array_equal(ea, lz, equal_nan=ea.dtype.kind in "fc"):
            raise FuzzProblem(f"lazy result differs from eager result\n  call: {desc}")
    stats["computed_ok"] += 1


def _fuzz_op(op: str, examples: int, seed: int, mark) -> dict:
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    row = next(r for r in _native.op_table() if r[0] == op)
    n_in, n_out, schema = row[3], row[4], [tuple(s) for s in row[5]]
    strategy = _fuzz_strategies()(n_in, schema)
    stats = {"examples": 0, "infer_ok": 0, "computed_ok": 0}

    problems: list[str] = []
    for explicit in _explicit_examples(n_in, schema):
        stats["examples"] += 1
        try:
            _fuzz_example(op, n_in, n_out, explicit, mark, stats)
        except FuzzProblem as e:
            if len(problems) < 6:
                problems.append(f"[systematic case] {e}")
        finally:
            F.lazy_eval(False)
    stats["explicit"] = stats.pop("examples")
    stats["examples"] = 0

    @hseed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(ex=strategy)
    def run(ex):
        stats["examples"] += 1
        _fuzz_example(op, n_in, n_out, ex, mark, stats)

    try:
        run()
    except BaseException as e:  # noqa: BLE001  (FuzzProblem, an ExceptionGroup of them, or an internal error)
        subs = getattr(e, "exceptions", None) or [e]
        problems += [
            f"[random case] {s}" if isinstance(s, FuzzProblem) else f"{type(s).__name__}: {s}" for s in subs
        ]
    finally:
        F.lazy_eval(False)
    return {"ok": not problems, "problems": problems, **stats}


def _fuzz_main() -> None:
    """Child entry: fuzz the ops named in MNN_FUZZ_OPS, one JSON line per op on stdout."""
    import faulthandler

    ops = os.environ["MNN_FUZZ_OPS"].split(",")
    examples = int(os.environ["MNN_FUZZ_EXAMPLES_RUN"])
    seed = int(os.environ["MNN_FUZZ_SEED_RUN"])
    fd = os.open(os.environ["MNN_FUZZ_LAST_CALL"], os.O_WRONLY | os.O_CREAT, 0o600)

    def mark(desc: str) -> None:  # the last call, for the parent's report if we die in native code
        os.pwrite(fd, desc.encode("utf-8", "replace")[:4000].ljust(4096), 0)

    for op in ops:
        print(json.dumps({"begin": op}), flush=True)
        faulthandler.dump_traceback_later(PER_OP_TIMEOUT_S, exit=True)
        if os.environ.get("MNN_FUZZ_SELFTEST_CRASH") == op:  # test_fuzz_harness_survives_a_crash
            import ctypes

            mark(f"selftest crash in {op}")
            faulthandler.disable()
            ctypes.string_at(0)
        res = _fuzz_op(op, examples, seed, mark)
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({"done": op, **res}), flush=True)


# =============================================================================
# The parent side: run the child, survive its crashes, one test per op
# =============================================================================


def run_fuzz(ops: list[str], examples: int = EXAMPLES_PER_OP, seed: int = FUZZ_SEED) -> dict[str, dict]:
    """Fuzzes ``ops`` in child processes; a crashed or hung op is recorded and the rest continue."""
    results: dict[str, dict] = {}
    todo = list(ops)
    with tempfile.TemporaryDirectory() as tmp:
        last_call = os.path.join(tmp, "last_call")
        while todo:
            Path(last_call).write_bytes(b"")
            env = dict(
                os.environ,
                MNN_FUZZ_OPS=",".join(todo),
                MNN_FUZZ_EXAMPLES_RUN=str(examples),
                MNN_FUZZ_SEED_RUN=str(seed),
                MNN_FUZZ_LAST_CALL=last_call,
                PYTHONFAULTHANDLER="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            )
            timeout = PER_OP_TIMEOUT_S * len(todo) + 60
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", "from tests.test_errors import _fuzz_main; _fuzz_main()"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                out, err, rc = proc.stdout, proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
                rc = "timeout"
            current = None
            for line in out.splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "begin" in msg:
                    current = msg["begin"]
                elif "done" in msg:
                    results[msg["done"]] = msg
                    current = None
            todo = [op for op in todo if op not in results]
            if not todo:
                break
            if current is None:  # died before starting an op (import error, ...): blame the next one
                current = todo[0]
            call = Path(last_call).read_bytes().decode("utf-8", "replace").strip()
            results[current] = {
                "ok": False,
                "examples": None,
                "problems": [
                    f"CRASH: the fuzz process died (exit status {rc}) while running {current!r}.\n"
                    f"  last call: {call or '(none recorded)'}\n  stderr tail:\n{err[-3000:]}"
                ],
            }
            todo = [op for op in todo if op not in results]
    return results


@pytest.fixture(scope="module")
def fuzz_results(request: pytest.FixtureRequest) -> dict[str, dict]:
    # Fuzz only the ops whose tests were selected (``-k`` keeps it quick).
    wanted = [
        item.callspec.params["op"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_fuzz_op" and hasattr(item, "callspec")
    ]
    ops = sorted(set(wanted), key=OPS.index) or OPS
    return run_fuzz([op for op in ops if F.OP_TABLE[op].has_shape_rule])


@pytest.mark.parametrize("op", OPS)
def test_fuzz_op(op: str, fuzz_results: dict[str, dict]) -> None:
    """Invalid (and valid) arguments to ``op``: no crash, only ValueError/TypeError/IndexError naming it."""
    if not F.OP_TABLE[op].has_shape_rule:
        pytest.skip(f"{op} has no shape rule yet (tests/test_ops.py reports it)")
    res = fuzz_results.get(op)
    assert res is not None, f"{op}: the fuzz produced no result"
    assert res["ok"], f"{op}: " + "\n\n".join(res["problems"])


def test_fuzz_harness_survives_a_crash() -> None:
    """The harness itself: a child that segfaults in one op is reported as a crash of that op, with the
    call it was making, and the ops after it are still fuzzed."""
    os.environ["MNN_FUZZ_SELFTEST_CRASH"] = "abs"
    try:
        res = run_fuzz(["negative", "abs", "sign"], examples=3)
    finally:
        del os.environ["MNN_FUZZ_SELFTEST_CRASH"]
    assert set(res) == {"negative", "abs", "sign"}
    assert not res["abs"]["ok"] and "CRASH" in res["abs"]["problems"][0], res["abs"]
    assert "abs" in res["abs"]["problems"][0]
    assert res["sign"]["examples"] == res["negative"]["examples"] == 3, res


# =============================================================================
# Hand-written checks: the messages are for people
# =============================================================================


def test_broadcast_error_names_op_and_shapes() -> None:
    with pytest.raises(ValueError) as ei:
        F.add(F.ones((2, 3)), F.ones((4,)))
    msg = str(ei.value)
    assert "add" in msg and "(2, 3)" in msg and "(4,)" in msg, msg


@pytest.mark.parametrize("name", sorted(F.BINARY_FUNCS))
def test_every_binary_function_reports_both_shapes(name: str) -> None:
    a, b = np.ones((2, 3), np.float32), np.ones((4,), np.float32)
    if name.startswith(("bitwise", "left_shift", "right_shift")):
        a, b = a.astype(np.int32), b.astype(np.int32)
    with pytest.raises(ValueError) as ei:
        F.BINARY_FUNCS[name](F.array(a), F.array(b))
    msg = str(ei.value)
    assert name in msg and "(2, 3)" in msg and "(4,)" in msg, msg


def test_operator_errors_name_the_op() -> None:
    with pytest.raises(ValueError, match=r"multiply.*\(3,\).*\(2,\)"):
        F.ones(3) * F.ones(2)
    with F.lazy_eval(True):  # shape rules run when the op is recorded, not when it is read
        with pytest.raises(ValueError, match="subtract"):
            F.ones((2, 2)) - F.ones((3, 1, 5))


def test_apply_dtype_mismatch_names_both_dtypes() -> None:
    with pytest.raises(TypeError) as ei:
        _native.apply("add", [F.ones(2, "float32"), F.ones(2, "int32")], {})
    msg = str(ei.value)
    assert "add" in msg and "float32" in msg and "int32" in msg, msg


ATTR_CASES = [
    (op, name, typ) for op, _, _, _, _, schema, _, _ in _native.op_table() for name, typ, _ in schema
]
WRONG_VALUE = {"int": 1.5, "bool": 0.5, "float": "x", "ints": "abc", "floats": "abc", "str": 3, "dtype": 5,
               "graph": "not a graph"}


def _valid_attrs(schema: list) -> dict:
    good = {
        "int": 0,
        "bool": False,
        "float": 0.0,
        "ints": [0],
        "floats": [0.0],
        "str": "none",
        "dtype": "float32",
        "graph": _graph_attr("graph:identity"),
    }
    return {name: good[typ] for name, typ, _ in schema}


def _some_inputs(op: str) -> list:
    row = next(r for r in _native.op_table() if r[0] == op)
    n = row[3] if row[3] >= 0 else 1
    return [F.ones((2, 2))] * n


@pytest.mark.parametrize("op,attr,typ", ATTR_CASES, ids=[f"{o}.{a}" for o, a, _ in ATTR_CASES])
def test_wrong_attribute_type_names_op_and_attribute(op: str, attr: str, typ: str) -> None:
    row = next(r for r in _native.op_table() if r[0] == op)
    attrs = _valid_attrs(row[5])
    attrs[attr] = WRONG_VALUE[typ]
    for call in (
        lambda: _native.infer(op, [("float32", [2, 2])] * max(row[3], 1 if row[3] < 0 else 0), attrs),
        lambda: _native.apply(op, _some_inputs(op), attrs),
    ):
        with pytest.raises(TypeError) as ei:
            call()
        msg = str(ei.value)
        assert names_op(op, msg) and f"'{attr}'" in msg, msg


REQUIRED_ATTRS = [
    (op, name)
    for op, _, _, _, _, schema, _, _ in _native.op_table()
    for name, _, has_default in schema
    if not has_default
]


@pytest.mark.parametrize("op,attr", REQUIRED_ATTRS, ids=[f"{o}.{a}" for o, a in REQUIRED_ATTRS])
def test_missing_attribute_names_it(op: str, attr: str) -> None:
    row = next(r for r in _native.op_table() if r[0] == op)
    attrs = _valid_attrs(row[5])
    del attrs[attr]
    with pytest.raises(TypeError) as ei:
        _native.apply(op, _some_inputs(op), attrs)
    msg = str(ei.value)
    assert names_op(op, msg) and f"'{attr}'" in msg and "missing" in msg, msg


@pytest.mark.parametrize("op", OPS)
def test_unknown_attribute_names_op_and_attribute(op: str) -> None:
    row = next(r for r in _native.op_table() if r[0] == op)
    attrs = _valid_attrs(row[5])
    attrs["no_such_attr"] = 1
    with pytest.raises(TypeError) as ei:
        _native.apply(op, _some_inputs(op), attrs)
    msg = str(ei.value)
    assert names_op(op, msg) and "no_such_attr" in msg, msg


@pytest.mark.parametrize("op", [r[0] for r in _native.op_table() if r[3] >= 0])
def test_wrong_input_count_names_op(op: str) -> None:
    row = next(r for r in _native.op_table() if r[0] == op)
    for n in {row[3] + 1, max(row[3] - 1, 0)} - {row[3]}:
        with pytest.raises(TypeError) as ei:
            _native.apply(op, [F.ones((2, 2))] * n, _valid_attrs(row[5]))
        assert names_op(op, str(ei.value)) and str(row[3]) in str(ei.value), str(ei.value)


def test_non_string_attribute_key_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _native.apply("cast", [F.ones(2)], {"dtype": "int8", 1: 2})


def test_unknown_op_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="no_such_op"):
        _native.apply("no_such_op", [F.ones(2)], {})
    with pytest.raises(ValueError):
        _native.apply(10_000, [F.ones(2)], {})
    with pytest.raises((ValueError, TypeError, OverflowError)):  # not RuntimeError / a crash
        _native.apply(2**70, [F.ones(2)], {})


@pytest.mark.parametrize(
    "junk",
    [None, "abc", [1, [2, 3]], object(), {"a": 1}, np.zeros(2, np.complex64)],
    ids=["None", "str", "ragged", "object", "dict", "complex"],
)
def test_unconvertible_input_names_the_op(junk: Any) -> None:
    """An input that is not array-like is a TypeError/ValueError that says which op and which input."""
    with pytest.raises((TypeError, ValueError)) as ei:
        _native.apply("add", [F.ones(2), junk], {})
    assert "add" in str(ei.value), str(ei.value)
    with pytest.raises((TypeError, ValueError)) as ei:
        F.add(F.ones(2), junk)
    assert "add" in str(ei.value), str(ei.value)


def test_bad_dtype_names_are_type_errors() -> None:
    with pytest.raises(TypeError, match="float33"):
        F.zeros(2, "float33")
    with pytest.raises(TypeError, match="float33"):
        F.ones(2).astype("float33")
    with pytest.raises(TypeError, match="float33"):
        F.cast(F.ones(2), "float33")
    with pytest.raises(TypeError):
        F.array([1, 2], dtype=np.complex64)
    with pytest.raises(TypeError, match="float33"):
        F.placeholder([2], "float33")
    with pytest.raises(TypeError, match="float33"):
        _native.infer("negative", [("float33", [2])], {})


def test_bad_dtype_attribute_names_op_and_attribute() -> None:
    for value in ("float33", 5, None):
        with pytest.raises(TypeError) as ei:
            _native.apply("cast", [F.ones(2)], {"dtype": value})
        msg = str(ei.value)
        assert "cast" in msg and "'dtype'" in msg, msg


def test_placeholder_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        F.placeholder([2, -1])
    # More elements than int64 can count: the size would wrap around.
    with pytest.raises(ValueError, match="placeholder"):
        F.placeholder([2**62, 4])


def test_outputs_whose_size_overflows_are_rejected() -> None:
    """A shape rule must not accept an output with more than 2**63-1 elements (its size would wrap)."""
    with pytest.raises(ValueError, match="add"):
        _native.infer("add", [("float32", [2**40, 1]), ("float32", [1, 2**40])], {})


def test_huge_allocation_is_a_memory_error() -> None:
    with pytest.raises((MemoryError, ValueError)):
        F.zeros((2**40, 2**20))


def test_errors_leave_the_mode_alone() -> None:
    with F.lazy_eval(True):
        with pytest.raises(ValueError):
            F.ones(2) + F.ones(3)
        assert F.is_lazy()
    assert not F.is_lazy()


if __name__ == "__main__":
    _fuzz_main()
