"""Every op record against numpy, eagerly and lazily, over hypothesis-drawn inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mnn_expr as F
from tests.op_records import ALL_RECORDS, HALFS, INTS, OpRecord, make_values, same_shapes

HALF_TOL = 1e-2


def expected_dtype(rec: OpRecord, dtype: str, ref_out: np.ndarray, params: dict) -> str:
    """Our documented result dtype: numpy's, except that integer inputs compute in float32
    (numpy: float64) and halves stay halves."""
    if rec.result_dtype is not None:
        return rec.result_dtype(dtype, params)
    got = ref_out.dtype.name
    if ref_out.dtype.kind == "f" and (dtype in INTS or dtype == "bool"):
        return "float32"
    if got == "float64" and dtype != "float64":
        return dtype if dtype in HALFS or dtype == "float32" else "float32"
    if dtype == "bfloat16" and got == "float32":
        return "bfloat16"
    return got


def compare(rec: OpRecord, dtype: str, ours, ref, params: dict) -> None:
    if isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(ref), f"{rec.name}: expected {len(ref)} outputs"
        for o, r in zip(ours, ref):
            compare(rec, dtype, o, r, params)
        return
    ref = np.asarray(ref)
    assert isinstance(ours, F.Var), f"{rec.name}: expected a Var, got {type(ours).__name__}"
    got = ours.read()
    assert tuple(ours.shape) == ref.shape, f"{rec.name}: shape {ours.shape} != numpy {ref.shape}"
    assert got.shape == ref.shape
    if rec.check_dtype:
        want = expected_dtype(rec, dtype, ref, params)
        assert ours.dtype == want, f"{rec.name}: dtype {ours.dtype} != expected {want} (input {dtype})"
    if ref.dtype.kind == "f" or got.dtype.kind == "f":
        tol = HALF_TOL if dtype in HALFS or ref.dtype == np.float16 else 0
        np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64), rtol=max(rec.rtol, tol),
                                   atol=max(rec.atol, tol), equal_nan=True, err_msg=rec.name)
    else:
        np.testing.assert_array_equal(got, ref, err_msg=rec.name)


def run_record(rec: OpRecord, data: st.DataObject, lazy: bool) -> None:
    shp = data.draw(rec.shapes if rec.shapes is not None else same_shapes(rec.nargs), label="shapes")
    dtype = data.draw(st.sampled_from(rec.dtypes), label="dtype")
    params = data.draw(rec.params(shp), label="params") if rec.params is not None else {}
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    arrays = make_values(rec, rng, shp, dtype, params)
    with np.errstate(all="ignore"):
        ref = rec.ref(*arrays, **params)
        if dtype == "float16" and isinstance(ref, np.ndarray) and ref.dtype == np.float32:
            ref = ref.astype(np.float16)
    # numpy arrays carry their dtype; bfloat16 values travel as float32 and are cast.
    inputs = [F.array(a, dtype="bfloat16") if dtype == "bfloat16" and a.dtype == np.float32 else F.array(a)
              for a in arrays]
    with F.lazy_eval(lazy):
        ours = rec.fn(F, *inputs, **params)
        compare(rec, dtype, ours, ref, params)


@pytest.mark.parametrize("mode", ["eager", "lazy"])
@pytest.mark.parametrize("rec", ALL_RECORDS, ids=lambda r: r.name)
def test_op_matches_numpy(rec: OpRecord, mode: str) -> None:
    if mode == "lazy" and not rec.lazy:
        pytest.skip("record is eager-only")

    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        run_record(rec, data, lazy=mode == "lazy")

    check()


def test_every_primitive_has_rule_kernel_and_record() -> None:
    """The coverage check: CI fails when a primitive lacks a shape rule, a kernel or a test record."""
    covered = {p for rec in ALL_RECORDS for p in rec.covers}
    missing_rule = [n for n, info in F.OP_TABLE.items() if not info.has_shape_rule]
    missing_kernel = [n for n, info in F.OP_TABLE.items() if not info.has_kernel]
    missing_record = [n for n in F.OP_TABLE if n not in covered]
    unknown = sorted(covered - set(F.OP_TABLE))
    assert not missing_rule, f"primitives without a shape rule: {missing_rule}"
    assert not missing_kernel, f"primitives without a kernel: {missing_kernel}"
    assert not missing_record, f"primitives without a test record: {missing_record}"
    assert not unknown, f"records cover unknown primitives: {unknown}"
