"""The Var surface: properties, conversions to numpy/Python/DLPack, printing, creation
functions (NumPy and MNN spellings and argument orders) — all against numpy/torch."""

from __future__ import annotations

import gc
import operator
from typing import Any

import numpy as np
import pytest

import mnn_expr as F

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

DTYPES = ("bool", "int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64")
NP_DTYPES = tuple(d for d in DTYPES if d != "bfloat16")  # numpy has no bfloat16


def sample(dtype: str, shape: tuple = (2, 3), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype in ("int8", "uint8", "int32", "int64"):
        lo = 0 if dtype == "uint8" else -5
        return rng.integers(lo, 100, shape).astype(dtype)
    return rng.uniform(-4, 4, shape).astype("float32" if dtype == "bfloat16" else dtype)


# ---- properties ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4, 5)])
def test_shape_ndim_size(shape: tuple) -> None:
    ref = np.zeros(shape, np.float32)
    v = F.zeros(shape)
    assert v.shape == ref.shape and isinstance(v.shape, tuple)
    assert v.ndim == ref.ndim and v.size == ref.size
    assert v.read().shape == ref.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_compares_with_names_numpy_and_mnn_spellings(dtype: str) -> None:
    v = F.zeros(3, dtype)
    assert v.dtype == dtype and v.dtype == getattr(F, "bool_" if dtype == "bool" else dtype)
    assert str(v.dtype) == dtype
    if dtype != "bfloat16":
        assert v.dtype == np.dtype(dtype)
        assert v.read().dtype == np.dtype(dtype)
    else:
        assert v.read().dtype == np.float32  # documented: bfloat16 reads as float32


def test_mnn_dtype_spellings() -> None:
    assert F.float == F.float32 and F.double == F.float64 and F.int == F.int32 and F.bool == F.bool_
    assert F.zeros(2, F.int).read().dtype == np.int32
    assert F.zeros(2, F.float).read().dtype == np.float32
    assert F.zeros(2, F.double).read().dtype == np.float64
    assert F.zeros(2, "half").dtype == F.float16


def test_name() -> None:
    v = F.ones(2)
    assert v.name == ""
    v.name = "weights"
    assert v.name == "weights"
    assert F.placeholder([2], name="input0").name == "input0"


# ---- numpy views -----------------------------------------------------------------------


def test_read_is_read_only_and_shares_memory() -> None:
    v = F.array(np.arange(6, dtype=np.float32)) * 2.0
    a, b = v.read(), v.numpy()
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    assert np.shares_memory(a, b), "read() should return a view of the Var's memory, not a copy"
    np.testing.assert_array_equal(a, np.arange(6, dtype=np.float32) * 2)


def test_read_array_outlives_the_var() -> None:
    v = F.array(np.arange(1000, dtype=np.float64)) + 1.0
    a = v.read()
    del v
    gc.collect()
    junk = [F.ones(1000, "float64") * 7.0 for _ in range(50)]  # reuse freed memory if it was freed
    np.testing.assert_array_equal(a, np.arange(1000, dtype=np.float64) + 1)
    del junk


def test_asarray_is_zero_copy_and_array_copies() -> None:
    """Document-by-test: F.asarray shares a C-contiguous numpy array (writes are visible), F.array copies."""
    src = np.arange(5, dtype=np.float32)
    shared, copied = F.asarray(src), F.array(src)
    assert np.shares_memory(shared.read(), src)
    assert not np.shares_memory(copied.read(), src)
    src[0] = 42.0
    assert shared.read()[0] == 42.0 and (shared + 0.0).read()[0] == 42.0
    assert copied.read()[0] == 0.0
    del src
    gc.collect()
    assert shared.read()[0] == 42.0  # the Var keeps the numpy buffer alive


def test_asarray_copies_when_it_must() -> None:
    base = np.arange(12, dtype=np.int32).reshape(3, 4)
    strided = F.asarray(base[:, ::2])  # not contiguous
    np.testing.assert_array_equal(strided.read(), base[:, ::2])
    assert strided.dtype == F.int32
    np.testing.assert_array_equal(F.asarray(base.T).read(), base.T)
    for src, want in [
        (np.int16, "int32"),
        (np.uint16, "int32"),
        (np.uint32, "int64"),
    ]:  # dtypes we do not store
        v = F.asarray(np.array([1, 2, 3], src))
        assert v.dtype == want
        np.testing.assert_array_equal(v.read(), [1, 2, 3])


@pytest.mark.parametrize(
    "obj,want",
    [
        ([1, 2, 3], "int64"),
        ([1.5, 2.0], "float32"),
        ([1, 2.5], "float32"),
        ([True, False], "bool"),
        (3, "int64"),
        (2.5, "float32"),
        (True, "bool"),
        (np.float64(2.5), "float64"),
        (np.array([1.5]), "float64"),
        (np.int8(3), "int8"),
        ([[1, 2], [3, 4]], "int64"),
    ],
)
def test_python_and_numpy_inputs_get_documented_dtypes(obj: Any, want: str) -> None:
    v = F.asarray(obj)
    assert v.dtype == want, (obj, v.dtype)
    np.testing.assert_array_equal(v.read(), np.asarray(obj).astype(want))
    assert v.shape == np.shape(obj)


def test_array_protocol() -> None:
    v = F.array(np.arange(6, dtype=np.int32).reshape(2, 3))
    a = np.asarray(v)
    np.testing.assert_array_equal(a, np.arange(6).reshape(2, 3))
    assert a.dtype == np.int32
    assert np.asarray(v, dtype=np.float64).dtype == np.float64
    c = np.array(v, copy=True)
    assert c.flags.writeable and not np.shares_memory(c, v.read())
    assert np.add(v, 1).tolist() == [[1, 2, 3], [4, 5, 6]]  # numpy functions accept Vars


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 0)])
def test_tolist_and_item(shape: tuple) -> None:
    ref = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    v = F.array(ref)
    assert v.tolist() == ref.tolist()
    if ref.size == 1:
        assert v.item() == ref.item() and type(v.item()) is int
    else:
        with pytest.raises(ValueError):
            v.item()
    if ref.size > 2:
        assert v.item(2) == ref.item(2)


@pytest.mark.parametrize("src", NP_DTYPES)
@pytest.mark.parametrize("dst", NP_DTYPES)
def test_astype_matches_numpy(src: str, dst: str) -> None:
    if np.dtype(src).kind == "f":
        vals = (
            [0.0, 1.5, -2.7, 100.9, 0.5, -0.0] if np.dtype(dst).kind != "u" else [0.0, 1.5, 2.7, 100.9, 200.5]
        )
    elif src == "bool":
        vals = [True, False, True]
    else:
        vals = [0, 1, 7, 100] + ([-1, -100] if np.dtype(src).kind == "i" else [200, 255])
        if np.dtype(src).itemsize >= 4:
            vals += [300, -300 if np.dtype(src).kind == "i" else 300]  # wraps on narrowing, as numpy
    ref = np.array(vals, src)
    got = F.array(ref).astype(dst)
    assert got.dtype == dst
    np.testing.assert_array_equal(got.read(), ref.astype(dst))


def test_astype_bfloat16_round_trip() -> None:
    x = np.array([1.0, -2.5, 3.140625, 0.0, 65280.0], np.float32)  # exactly representable in bfloat16
    v = F.array(x).astype("bfloat16")
    assert v.dtype == F.bfloat16
    np.testing.assert_array_equal(v.astype("float32").read(), x)
    np.testing.assert_array_equal(v.read(), x)


# ---- printing ------------------------------------------------------------------------------


def test_repr_shows_values_and_dtype() -> None:
    r = repr(F.array([1, 2, 3]))
    assert "1" in r and "2" in r and "3" in r and "int64" in r, r
    r = repr(F.array(np.array([0.5, -1.25], np.float16)))
    assert "0.5" in r and "-1.25" in r and "float16" in r, r
    r = repr(F.array(2.5))
    assert "2.5" in r and "float32" in r, r
    r = repr(F.zeros((2, 0)))
    assert "float32" in r, r
    assert "bfloat16" in repr(F.ones(2, "bfloat16"))


def test_str_is_numpys() -> None:
    x = np.array([[1.5, 2.0], [3.0, -4.0]], np.float32)
    assert str(F.array(x)) == str(x)
    assert str(F.array(7)) == str(np.array(7))


def test_printing_an_unwritten_placeholder_does_not_fail() -> None:
    p = F.placeholder([2, 3], name="img")
    assert "img" in repr(p)
    assert "img" in str(p)  # print(p) must not raise


# ---- Python conversions -----------------------------------------------------------------------


def test_bool() -> None:
    assert bool(F.array([1])) is True
    assert bool(F.array([0.0])) is False
    assert bool(F.array(True)) is True
    assert bool(F.ones((1, 1, 1))) is True
    with pytest.raises(ValueError, match="ambiguous"):
        bool(F.ones(2))
    with pytest.raises(ValueError):
        bool(F.ones(0))


def test_float_int_index() -> None:
    assert float(F.array([2.5])) == 2.5
    assert int(F.array([2.7])) == 2 and int(F.array([-2.7])) == -2  # truncation, as Python's int()
    assert int(F.array(np.int64(2**40))) == 2**40
    assert operator.index(F.array(3)) == 3
    assert [10, 20, 30][F.array(1)] == 20
    assert range(10)[F.array(np.int8(4))] == 4
    with pytest.raises(TypeError):
        operator.index(F.array(2.5))
    with pytest.raises((TypeError, ValueError)):
        float(F.ones(3))


def test_len() -> None:
    assert len(F.ones((4, 2))) == 4
    assert len(F.ones((0, 3))) == 0
    with pytest.raises(TypeError):
        len(F.array(1.0))


def test_iteration_yields_rows() -> None:
    """Iterating walks the first axis like numpy (uses indexing)."""
    ref = np.arange(6, dtype=np.float32).reshape(3, 2)
    rows = list(F.array(ref))
    assert len(rows) == 3
    for r, want in zip(rows, ref):
        assert isinstance(r, F.Var) and r.shape == (2,)
        np.testing.assert_array_equal(r.read(), want)
    assert [int(v) for v in F.arange(4)] == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        list(F.array(1.0))


def test_transpose_property() -> None:
    ref = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(F.array(ref).T.read(), ref.T)


# ---- DLPack -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_dlpack_to_numpy(dtype: str) -> None:
    v = F.array(sample(dtype))
    a = np.from_dlpack(v)
    np.testing.assert_array_equal(a, sample(dtype))
    assert a.dtype == np.dtype(dtype)
    assert np.shares_memory(a, v.read()), "DLPack export should not copy"


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_dlpack_from_numpy(dtype: str) -> None:
    src = sample(dtype)
    v = F.from_dlpack(src)
    assert v.dtype == dtype
    np.testing.assert_array_equal(v.read(), src)
    assert np.shares_memory(v.read(), src)


TORCH_DTYPES = ("bool", "int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64")


@needs_torch
@pytest.mark.parametrize("dtype", [d for d in TORCH_DTYPES if d != "bfloat16"])
def test_dlpack_to_torch(dtype: str) -> None:
    v = F.array(sample(dtype))
    t = torch.from_dlpack(v)
    assert t.dtype == getattr(torch, dtype)
    np.testing.assert_array_equal(t.numpy(), sample(dtype))
    assert t.data_ptr() == v.read().ctypes.data, "DLPack export should not copy"


@needs_torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_dlpack_from_torch(dtype: str) -> None:
    ref = torch.from_numpy(sample(dtype)).to(getattr(torch, dtype))
    v = F.from_dlpack(ref)
    assert v.dtype == dtype
    np.testing.assert_array_equal(
        v.read(), ref.to(torch.float32 if dtype == "bfloat16" else ref.dtype).numpy()
    )
    if dtype != "bfloat16":
        assert v.read().ctypes.data == ref.data_ptr(), "DLPack import should not copy"
        ref[0, 0] = 1  # the Var sees writes to the shared buffer
        assert v.read()[0, 0] == 1
    w = F.asarray(ref)  # asarray accepts any DLPack producer
    np.testing.assert_array_equal(w.read(), v.read())


# ---- creation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), 0, 3, (2, 3), [2, 0, 1]])
def test_zeros_ones_full_empty(dtype: str, shape: Any) -> None:
    npd = "float32" if dtype == "bfloat16" else dtype
    for ours, ref in [
        (F.zeros(shape, dtype), np.zeros(shape, npd)),
        (F.ones(shape, dtype), np.ones(shape, npd)),
        (F.full(shape, 1, dtype), np.full(shape, 1, npd)),
    ]:
        assert ours.dtype == dtype and ours.shape == ref.shape
        np.testing.assert_array_equal(ours.read(), ref)
        assert ours.op_type == "Const"
    e = F.empty(shape, dtype)
    assert e.dtype == dtype and e.shape == np.empty(shape).shape


def test_default_dtypes_of_creation() -> None:
    assert F.zeros(2).dtype == F.float32 and F.ones(2).dtype == F.float32 and F.empty(2).dtype == F.float32
    assert F.full((2,), 7).dtype == F.int64  # as numpy
    assert F.full((2,), 2.5).dtype == F.float32  # documented: float32 default float
    assert F.full((2,), True).dtype == F.bool_
    assert F.full((2,), np.float64(2.5)).dtype == F.float64
    np.testing.assert_array_equal(F.full((2, 2), -3).read(), np.full((2, 2), -3))
    with pytest.raises(ValueError):
        F.zeros((2, -1))


@pytest.mark.parametrize(
    "args,kw",
    [
        ((5,), {}),
        ((1, 7, 2), {}),
        ((10, 0, -3), {}),
        ((0, 1, 0.25), {}),
        ((5,), {"dtype": "float64"}),
        ((-2.5, 2.5, 0.5), {"dtype": "float64"}),
        ((0,), {}),
        ((3, 1), {}),
        ((0, 5, 1), {"dtype": "int8"}),
    ],
)
def test_arange(args: tuple, kw: dict) -> None:
    ref = np.arange(*args, **kw)
    if not kw and ref.dtype == np.float64:
        ref = ref.astype(np.float32)  # documented: Python floats give float32
    ours = F.arange(*args, **kw)
    assert ours.dtype == ref.dtype.name and ours.shape == ref.shape
    np.testing.assert_array_equal(ours.read(), ref)
    with pytest.raises(ValueError):
        F.arange(0, 5, 0)


@pytest.mark.parametrize(
    "args,kw",
    [
        ((0, 1, 5), {}),
        ((-1, 1, 4), {"endpoint": False}),
        ((2, 3, 1), {}),
        ((0, 1, 0), {}),
        ((0, 10, 7), {"dtype": "float64"}),
    ],
)
def test_linspace(args: tuple, kw: dict) -> None:
    dt = kw.get("dtype", "float32")
    ref = np.linspace(*args, endpoint=kw.get("endpoint", True)).astype(dt)
    ours = F.linspace(*args, **kw)
    assert ours.dtype == dt and ours.shape == ref.shape
    np.testing.assert_allclose(ours.read(), ref, rtol=1e-7)
    with pytest.raises(ValueError):
        F.linspace(0, 1, -1)


@pytest.mark.parametrize(
    "args,kw",
    [
        ((3,), {}),
        ((3, 4), {"k": 1}),
        ((4, 2), {"k": -1}),
        ((3,), {"dtype": "int32"}),
        ((0,), {}),
        ((2, 3), {"k": 5}),
    ],
)
def test_eye_and_identity(args: tuple, kw: dict) -> None:
    dt = kw.pop("dtype", "float32")
    ref = np.eye(*args, **kw, dtype=dt)
    ours = F.eye(*args, **kw, dtype=dt)
    assert ours.dtype == dt
    np.testing.assert_array_equal(ours.read(), ref)
    np.testing.assert_array_equal(F.identity(4).read(), np.identity(4, np.float32))
    assert F.identity(2, "int8").dtype == F.int8


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_like_functions(dtype: str) -> None:
    x = F.array(sample(dtype))
    src = sample(dtype)
    for fn, ref in [
        (F.zeros_like, np.zeros_like),
        (F.ones_like, np.ones_like),
    ]:
        for arg in (x, src):
            got = fn(arg)
            assert got.dtype == dtype and got.shape == src.shape
            np.testing.assert_array_equal(got.read(), ref(src))
    got = F.full_like(x, 1)
    np.testing.assert_array_equal(got.read(), np.full_like(src, 1))
    assert got.dtype == dtype
    assert F.empty_like(x).shape == src.shape and F.empty_like(x).dtype == dtype
    assert F.zeros_like(x, "float64").dtype == F.float64
    assert F.ones_like(x, dtype=F.int).dtype == F.int32


def test_scalar_and_const_mnn_order() -> None:
    s = F.scalar(3.5)
    assert s.shape == () and s.dtype == F.float32 and s.item() == 3.5
    assert F.scalar(2, F.int).dtype == F.int32
    c = F.const([1.0, 2.0, 3.0], [3], F.NCHW, F.float)
    assert c.dtype == F.float32 and c.op_type == "Const"
    np.testing.assert_array_equal(c.read(), [1.0, 2.0, 3.0])
    c = F.const(np.arange(4), [4], dtype=F.int)
    assert c.dtype == F.int32
    # MNN: const(values, shape, data_format, dtype) with flat values and a shape
    c = F.const([1, 2, 3, 4, 5, 6], [2, 3], F.NCHW, F.float)
    assert c.shape == (2, 3) and c.dtype == F.float32
    np.testing.assert_array_equal(c.read(), np.arange(1, 7, dtype=np.float32).reshape(2, 3))


def test_placeholder_numpy_and_mnn_argument_order() -> None:
    p = F.placeholder([2, 3], "int32", name="ids")
    assert p.shape == (2, 3) and p.dtype == F.int32 and p.op_type == "Input" and not p._computed
    q = F.placeholder([2], F.NCHW, F.int)  # MNN: placeholder(shape, data_format, dtype)
    assert q.dtype == F.int32 and q.shape == (2,)
    r = F.placeholder([4], F.NHWC)
    assert r.dtype == F.float32
    assert F.placeholder().shape == ()


def test_op_types_and_fix_as() -> None:
    c = F.ones(3)
    assert c.op_type == "Const"
    with F.lazy_eval(True):
        y = c * 2.0
        assert y.op_type == "multiply" and not y._computed
        y.fix_as_const()  # computes now and freezes the value
        assert y._computed and not y._has_history and y.op_type == "Const"
        np.testing.assert_array_equal(y.read(), [2.0, 2.0, 2.0])
    w = F.ones(2) * 3.0
    w.fix_as_trainable()
    assert w.op_type == "Trainable" and w.requires_grad
    np.testing.assert_array_equal(w.read(), [3.0, 3.0])
    with pytest.raises(TypeError):
        F.ones(2, "int32").fix_as_trainable()
    p = F.ones(2)
    p.fix_as_placeholder()
    assert p.op_type == "Input"
    p.write([5.0, 6.0])
    np.testing.assert_array_equal((p + 1.0).read(), [6.0, 7.0])


def test_mnn_compat_properties_and_clone() -> None:
    v = F.ones((2, 3))
    assert v.data_format == "NCHW" and v.valid
    c = F.clone(v, deep_copy=True)
    np.testing.assert_array_equal(c.read(), v.read())
    assert not np.shares_memory(c.read(), v.read())
    assert F.range_(0, 6, 2).tolist() == [0, 2, 4]
    np.testing.assert_array_equal(F.fill([2, 2], 3.0).read(), np.full((2, 2), 3.0, np.float32))


def test_vars_are_not_hashable_and_compare_elementwise() -> None:
    v = F.array([1, 2, 3])
    with pytest.raises(TypeError):
        hash(v)
    assert (v == F.array([1, 0, 3])).tolist() == [True, False, True]
    assert (v != 2).tolist() == [True, False, True]
