"""mnn_nn.data: data sets, samplers, DataLoader (incl. worker processes), transforms, IDX files.

References are numpy slicing / numpy computations and hand-built IDX bytes.
"""

from __future__ import annotations

import gc
import gzip
import io
import multiprocessing
import os
import struct
import time
from collections import namedtuple

import numpy as np
import pytest

import mnn_expr as F
from mnn_nn.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    MNISTDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    get_worker_info,
    random_split,
    read_idx,
    write_idx,
)
from mnn_nn.data import transforms as T

RNG = np.random.default_rng(1234)
X = RNG.standard_normal((23, 3, 4)).astype(np.float32)
Y = RNG.integers(0, 10, 23).astype(np.int64)


def _np(batch):
    """A batch (nest of Vars) as a nest of numpy copies."""
    if isinstance(batch, F.Var):
        return batch.read().copy()
    if isinstance(batch, dict):
        return {k: _np(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_np(v) for v in batch) if not hasattr(batch, "_fields") else type(batch)(
            *(_np(v) for v in batch))
    return batch


def _assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for p, q in zip(a, b):
            _assert_same(p, q)
    else:
        assert a == b


def _no_children(timeout=5.0):
    deadline = time.monotonic() + timeout
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return multiprocessing.active_children() == []


# ----------------------------------------------------------------------------- data sets


def test_tensor_dataset_rows_and_errors():
    ds = TensorDataset(X, Y)
    assert len(ds) == 23
    x, y = ds[5]
    np.testing.assert_array_equal(x, X[5])
    assert y == Y[5]
    np.testing.assert_array_equal(ds[-1][0], X[-1])
    vds = TensorDataset(F.array(X), Y)
    vx, vy = vds[3]
    assert isinstance(vx, F.Var) and vx.shape == (3, 4)
    np.testing.assert_array_equal(vx.read(), X[3])
    with pytest.raises(IndexError):
        ds[23]
    with pytest.raises(TypeError):
        ds[1.5]
    with pytest.raises(ValueError, match="first dimensions"):
        TensorDataset(X, Y[:-1])
    with pytest.raises(ValueError):
        TensorDataset()


def test_subset_concat_random_split():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [7, 2, -1])
    assert [int(sub[i][0]) for i in range(3)] == [7, 2, 9]
    cat = ConcatDataset([ds, TensorDataset(np.arange(100, 103))])
    assert len(cat) == 13
    assert [int(cat[i][0]) for i in (0, 9, 10, 12, -1, -4)] == [0, 9, 100, 102, 102, 9]
    assert len(ds + ds) == 20
    with pytest.raises(IndexError):
        cat[13]
    a, b, c = random_split(ds, [5, 3, 2], seed=0)
    assert (len(a), len(b), len(c)) == (5, 3, 2)
    assert sorted(a.indices + b.indices + c.indices) == list(range(10))
    assert [s.indices for s in random_split(ds, [5, 3, 2], seed=0)] == [a.indices, b.indices, c.indices]
    assert a.indices == np.random.default_rng(0).permutation(10)[:5].tolist()
    p, q = random_split(TensorDataset(np.arange(11)), [0.5, 0.5], seed=1)
    assert (len(p), len(q)) == (6, 5)  # floor, remainder to the first part (PyTorch's rule)
    with pytest.raises(ValueError, match="sum"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError):
        random_split(ds, [0.5, 0.6])


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    s = RandomSampler(range(50), seed=7)
    e1, e2 = list(s), list(s)
    assert sorted(e1) == list(range(50)) and sorted(e2) == list(range(50)) and e1 != e2
    ref = np.random.default_rng(7)
    assert e1 == ref.permutation(50).tolist() and e2 == ref.permutation(50).tolist()
    r = RandomSampler(range(5), replacement=True, num_samples=20, seed=0)
    draws = list(r)
    assert len(r) == 20 and len(draws) == 20 and all(0 <= i < 5 for i in draws)
    with pytest.raises(ValueError):
        RandomSampler(range(5), num_samples=6)
    assert sorted(SubsetRandomSampler([4, 8, 9], seed=0)) == [4, 8, 9]
    assert list(BatchSampler(range(7), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2
    with pytest.raises(ValueError):
        BatchSampler(range(3), 0, False)


# ----------------------------------------------------------------------------- DataLoader, main process


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_match_numpy_slicing(drop_last):
    loader = DataLoader(TensorDataset(X, Y), batch_size=5, drop_last=drop_last)
    batches = list(loader)
    n_full = 23 // 5
    assert len(loader) == len(batches) == (n_full if drop_last else n_full + 1)
    for k, (xb, yb) in enumerate(batches):
        assert isinstance(xb, F.Var) and isinstance(yb, F.Var)
        assert xb.dtype == F.float32 and yb.dtype == F.int64
        np.testing.assert_array_equal(xb.read(), X[5 * k:5 * k + 5])
        np.testing.assert_array_equal(yb.read(), Y[5 * k:5 * k + 5])
    assert batches[-1][0].shape == ((5, 3, 4) if drop_last else (3, 3, 4))


def test_var_samples_and_dtypes():
    xs = [F.array(X[i]) for i in range(4)]
    b = default_collate(xs)
    np.testing.assert_array_equal(b.read(), X[:4])
    b = default_collate([np.float64(1.5), np.float64(2.0)])
    assert b.dtype == F.float64 and b.tolist() == [1.5, 2.0]
    b = default_collate([(1, 2.5, True, "a", np.uint8(3)), (2, 3.5, False, "b", np.uint8(4))])
    assert [v.dtype for v in b[:3]] == [F.int64, F.float32, F.bool_]
    assert b[0].tolist() == [1, 2] and b[1].tolist() == [2.5, 3.5] and b[2].tolist() == [True, False]
    assert b[3] == ["a", "b"] and b[4].dtype == F.uint8 and b[4].tolist() == [3, 4]
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object(), object()])


def test_seeded_shuffle_reproducible_and_changes_per_epoch():
    ds = TensorDataset(Y)
    a = DataLoader(ds, batch_size=4, shuffle=True, seed=11)
    b = DataLoader(ds, batch_size=4, shuffle=True, seed=11)
    ea1 = np.concatenate([t[0].read() for t in a])
    ea2 = np.concatenate([t[0].read() for t in a])
    eb1 = np.concatenate([t[0].read() for t in b])
    eb2 = np.concatenate([t[0].read() for t in b])
    np.testing.assert_array_equal(ea1, eb1)
    np.testing.assert_array_equal(ea2, eb2)
    assert not np.array_equal(ea1, ea2)
    np.testing.assert_array_equal(np.sort(ea1), np.sort(Y))
    c = np.concatenate([t[0].read() for t in DataLoader(ds, batch_size=4, shuffle=True, seed=12)])
    assert not np.array_equal(ea1, c)


def test_custom_collate_and_nested_batches():
    Pair = namedtuple("Pair", "a b")

    class Nested(Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return {"img": X[i], "meta": (Y[i], [float(i), np.int32(i)]), "p": Pair(i, X[i, 0])}

    batches = list(DataLoader(Nested(), batch_size=3))
    assert len(batches) == 3
    for k, b in enumerate(batches):
        n = min(3, 7 - 3 * k)  # 7 samples: batches of 3, 3, 1
        sl = slice(3 * k, 3 * k + n)
        np.testing.assert_array_equal(b["img"].read(), X[sl])
        np.testing.assert_array_equal(b["meta"][0].read(), Y[sl])
        assert isinstance(b["meta"], tuple) and isinstance(b["meta"][1], list)
        np.testing.assert_array_equal(b["meta"][1][0].read(), np.arange(3 * k, 3 * k + n, dtype=np.float32))
        assert b["meta"][1][1].dtype == F.int32
        assert isinstance(b["p"], Pair) and b["p"].a.tolist() == list(range(3 * k, 3 * k + n))
        np.testing.assert_array_equal(b["p"].b.read(), X[sl, 0])

    def collate(samples):
        xs = np.stack([s[0] for s in samples])
        return {"sum": F.array(xs.sum(axis=0)), "n": len(samples)}

    out = list(DataLoader(TensorDataset(X, Y), batch_size=10, collate_fn=collate))
    assert [o["n"] for o in out] == [10, 10, 3]
    np.testing.assert_allclose(out[1]["sum"].read(), X[10:20].sum(axis=0), rtol=1e-6)


def test_loader_argument_errors():
    ds = TensorDataset(Y)
    for kw in ({"batch_size": 0}, {"num_workers": -1}, {"prefetch_factor": 0},
               {"shuffle": True, "sampler": SequentialSampler(ds)}, {"persistent_workers": True}):
        with pytest.raises(ValueError):
            DataLoader(ds, **kw)
    loader = DataLoader(ds, batch_sampler=[[3, 1], [0]])
    assert [b[0].tolist() for b in loader] == [[Y[3], Y[1]], [Y[0]]]


# ----------------------------------------------------------------------------- MNN interface


class MnnStyle(Dataset):
    """An MNN.data.Dataset subclass: returns ([input Vars], [target Vars])."""

    def __init__(self):
        super().__init__()

    def __getitem__(self, i):
        return [F.const(X[i].ravel(), [3, 4])], [F.array(np.uint8(Y[i]))]

    def __len__(self):
        return 23


@pytest.mark.parametrize("workers", [0, 2])
def test_mnn_reset_next_iter_number(workers):
    loader = DataLoader(MnnStyle(), 6, False, workers)  # MNN: (dataset, batch_size, shuffle, num_workers)
    assert loader.num_workers == workers and loader.iter_number == 4 and loader.size == 23
    for _ in range(2):
        loader.reset()
        for k in range(loader.iter_number):
            example = loader.next()
            assert isinstance(example, list) and len(example) == 2
            (x,), (y,) = example
            np.testing.assert_array_equal(x.read(), X[6 * k:6 * k + 6])
            assert y.dtype == F.uint8 and y.tolist() == Y[6 * k:6 * k + 6].tolist()
        with pytest.raises(StopIteration):
            loader.next()
    shuffled = DataLoader(MnnStyle(), 6, True, seed=3)
    shuffled.reset()
    ys = np.concatenate([shuffled.next()[1][0].read() for _ in range(shuffled.iter_number)])
    np.testing.assert_array_equal(np.sort(ys), np.sort(Y.astype(np.uint8)))
    loader.shutdown()
    assert _no_children()


# ----------------------------------------------------------------------------- worker processes


class NestedDS(Dataset):
    def __len__(self):
        return 23

    def __getitem__(self, i):
        return {"x": X[i], "v": F.array(X[i]) * 2.0, "y": (int(Y[i]), f"s{i}")}


def _collate_vars(samples):
    return F.array(np.stack([s[0] for s in samples])) + 1.0, [s[1] for s in samples]


def test_workers_give_the_same_batches_in_order():
    for kw in ({"dataset": TensorDataset(X, Y), "batch_size": 4, "shuffle": True},
               {"dataset": NestedDS(), "batch_size": 5, "drop_last": True},
               {"dataset": TensorDataset(X, Y), "batch_size": 3, "collate_fn": _collate_vars}):
        ref = [_np(b) for b in DataLoader(seed=5, **kw)]
        got = [_np(b) for b in DataLoader(seed=5, num_workers=2, prefetch_factor=3, **kw)]
        assert len(got) == len(ref)
        for a, b in zip(ref, got):
            _assert_same(a, b)
    # persistent workers: two epochs, the same as two single-process epochs
    ref_loader = DataLoader(TensorDataset(X, Y), batch_size=4, shuffle=True, seed=9)
    pw = DataLoader(TensorDataset(X, Y), batch_size=4, shuffle=True, seed=9, num_workers=2, persistent_workers=True)
    for _ in range(2):
        for a, b in zip([_np(b) for b in ref_loader], [_np(b) for b in pw]):
            _assert_same(a, b)
        assert len(multiprocessing.active_children()) == 2  # kept between epochs
    del pw
    gc.collect()
    assert _no_children()


class Failing(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 13:
            raise ValueError(f"sample {i} is corrupt")
        return X[i]


class Dying(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 9:
            os._exit(3)
        return X[i]


def test_worker_exception_and_death_propagate():
    with pytest.raises(ValueError, match=r"sample 13 is corrupt") as info:
        for _ in DataLoader(Failing(), batch_size=2, num_workers=2):
            pass
    msg = str(info.value)
    assert "DataLoader worker" in msg and "Traceback" in msg and "__getitem__" in msg
    del info
    assert _no_children()
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        for _ in DataLoader(Dying(), batch_size=2, num_workers=2):
            pass
    assert _no_children()


def test_break_and_gc_shut_workers_down():
    loader = DataLoader(TensorDataset(X, Y), batch_size=2, num_workers=2)
    for k, _ in enumerate(loader):
        if k == 1:
            break
    assert _no_children()
    it = iter(loader)
    next(it)
    assert len(multiprocessing.active_children()) == 2
    del it
    gc.collect()
    assert _no_children()
    # the MNN-style epoch held by the loader ends with the loader
    loader.reset()
    loader.next()
    del loader
    gc.collect()
    assert _no_children()


class NativeWork(Dataset):
    """Runs large native ops (which use the thread pool) inside the workers."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        a = F.full((256, 256), float(i + 1))
        return (F.matmul(a, a) + F.sum(F.ones((1 << 18,)))).read()[0, :4].copy(), get_worker_info().id


def test_fork_after_big_native_op_does_not_hang():
    big = F.ones((2048, 2048))
    assert float(F.sum(F.matmul(big[:512], big[:, :512]))) == 512.0 * 512 * 2048  # thread pool is running now
    t0 = time.monotonic()
    loader = DataLoader(NativeWork(), batch_size=2, num_workers=2, worker_threads=2, timeout=60)
    batches = [_np(b) for b in loader]
    assert time.monotonic() - t0 < 60
    vals = np.concatenate([b[0] for b in batches])
    ref = np.array([256.0 * (i + 1) ** 2 + (1 << 18) for i in range(8)], np.float32)
    np.testing.assert_array_equal(vals, np.repeat(ref[:, None], 4, axis=1))
    assert sorted(set(np.concatenate([b[1] for b in batches]).tolist())) == [0, 1]  # both workers did work
    assert _no_children()


class RandomAug(Dataset):
    def __init__(self):
        super().__init__()
        self.flip = T.RandomHorizontalFlip(0.5, seed=0)

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return self.flip(np.arange(2, dtype=np.int64).reshape(1, 2))[0], get_worker_info().seed


def test_workers_get_distinct_seeds_for_random_transforms():
    flips = {}
    for xs, seeds in DataLoader(RandomAug(), batch_size=8, num_workers=2, seed=0):
        for row, s in zip(xs.read().tolist(), seeds.tolist()):
            flips.setdefault(s, []).append(row[0])
    assert len(flips) == 2
    a, b = flips.values()
    assert a != b  # the two workers' transform generators were reseeded differently


# ----------------------------------------------------------------------------- transforms


def test_normalize_numpy_and_var():
    img = RNG.random((3, 5, 6)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    ref = (img - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]
    out = T.Normalize(mean, std)(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    vout = T.Normalize(mean, std)(F.array(img))
    assert isinstance(vout, F.Var)
    np.testing.assert_allclose(vout.read(), ref, rtol=1e-6)
    with F.lazy():
        lazy_out = T.Normalize(mean, std)(F.array(img))
        np.testing.assert_allclose(lazy_out.read(), ref, rtol=1e-6)
    u8 = (img * 255).astype(np.uint8)
    ref8 = (u8.astype(np.float32) - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]
    for out8 in (T.Normalize(mean, std)(u8), T.Normalize(mean, std)(F.array(u8)).read()):
        assert out8.dtype == np.float32
        np.testing.assert_allclose(out8, ref8, rtol=1e-6)
    np.testing.assert_allclose(T.Normalize(0.5, 2.0)(img[None]), (img[None] - 0.5) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0.1, 0.2], [1, 1])(img)
    with pytest.raises(ValueError, match="non-zero"):
        T.Normalize([0.1], [0.0])


def test_random_crop_and_flip_against_numpy():
    img = RNG.integers(0, 255, (3, 8, 7)).astype(np.uint8)
    crop = T.RandomCrop((5, 4), padding=2, seed=42)
    ref_rng = np.random.default_rng(42)
    padded = np.pad(img, [(0, 0), (2, 2), (2, 2)])
    for _ in range(10):
        i = int(ref_rng.integers(0, 12 - 5 + 1))
        j = int(ref_rng.integers(0, 11 - 4 + 1))
        np.testing.assert_array_equal(crop(img), padded[:, i:i + 5, j:j + 4])
    vout = T.RandomCrop((5, 4), padding=2, seed=42)(F.array(img))
    assert isinstance(vout, F.Var) and vout.dtype == F.uint8
    np.testing.assert_array_equal(vout.read(), T.RandomCrop((5, 4), padding=2, seed=42)(img))
    edge = T.RandomCrop(3, padding=(1, 0), padding_mode="edge", seed=3)(img)
    assert edge.shape == (3, 3, 3)
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(20)(img)
    flip = T.RandomHorizontalFlip(0.3, seed=5)
    ref_rng = np.random.default_rng(5)
    for _ in range(20):
        want = img[..., ::-1] if ref_rng.random() < 0.3 else img
        np.testing.assert_array_equal(flip(img), want)
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img), img)
    vflip = T.RandomHorizontalFlip(1.0)(F.array(img))
    np.testing.assert_array_equal(vflip.read(), img[..., ::-1])


def test_to_tensor_to_float_compose():
    hwc = RNG.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    out = T.ToTensor()(hwc)
    assert out.shape == (3, 5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, hwc.transpose(2, 0, 1).astype(np.float32) / 255, rtol=1e-7)
    np.testing.assert_allclose(T.ToTensor()(hwc[..., 0]), hwc[None, ..., 0] / np.float32(255), rtol=1e-7)
    f = RNG.random((4, 4, 2)).astype(np.float64)
    np.testing.assert_array_equal(T.ToTensor()(f), f.transpose(2, 0, 1).astype(np.float32))  # floats: no scaling
    np.testing.assert_allclose(T.ToFloat()(F.array(hwc)).read(), hwc / np.float32(255), rtol=1e-7)
    pipe = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3), T.ToVar()])
    v = pipe(hwc)
    assert isinstance(v, F.Var)
    np.testing.assert_allclose(v.read(), (hwc.transpose(2, 0, 1) / np.float32(255) - 0.5) / 0.25, rtol=1e-5,
                               atol=1e-6)


# ----------------------------------------------------------------------------- IDX


IDX_CODES = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}


def _idx_bytes(code, arr):
    """Reference encoder from the format description (independent of write_idx)."""
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(">" + IDX_CODES[code][0] + IDX_CODES[code][1]).tobytes()


@pytest.mark.parametrize("code", sorted(IDX_CODES))
def test_idx_round_trip_every_dtype(code, tmp_path):
    dt = np.dtype(IDX_CODES[code])
    if dt.kind == "f":
        arr = RNG.standard_normal((3, 4, 5)).astype(dt)
    else:
        info = np.iinfo(dt)
        arr = RNG.integers(info.min, int(info.max) + 1, (3, 4, 5)).astype(dt)
    p = tmp_path / "a.idx"
    write_idx(p, arr)
    assert p.read_bytes() == _idx_bytes(code, arr)
    back = read_idx(p)
    assert back.dtype == dt and back.dtype.isnative and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    # gzip, by suffix, and from a file object
    gz = tmp_path / "a.idx.gz"
    write_idx(gz, arr)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(str(gz)), arr)
    np.testing.assert_array_equal(read_idx(io.BytesIO(gzip.compress(_idx_bytes(code, arr)))), arr)
    # 1-d and empty
    np.testing.assert_array_equal(read_idx(io.BytesIO(_idx_bytes(code, arr[:, 0, 0]))), arr[:, 0, 0])
    assert read_idx(io.BytesIO(_idx_bytes(code, arr[:0]))).shape == (0, 4, 5)


_GOOD_IDX = _idx_bytes(0x08, np.arange(12, dtype=np.uint8).reshape(3, 4))
_BAD_IDX = {
    "truncated data": (_GOOD_IDX[:-1], "truncated"),
    "truncated header": (_GOOD_IDX[:6], "truncated"),
    "shorter than the magic": (_GOOD_IDX[:3], "truncated"),
    "bad magic": (b"\x01\x00" + _GOOD_IDX[2:], "bad magic"),
    "unknown dtype code": (_GOOD_IDX[:2] + b"\x0a" + _GOOD_IDX[3:], "dtype code 0x0A"),
    "trailing bytes": (_GOOD_IDX + b"\x00", "size mismatch"),
    "wrong dims": (_GOOD_IDX[:4] + struct.pack(">II", 3, 5) + _GOOD_IDX[12:], "truncated"),
    "ndim too small": (_GOOD_IDX[:3] + b"\x01" + _GOOD_IDX[4:], "size mismatch"),
    "corrupt gzip": (gzip.compress(_GOOD_IDX)[:-9], "gzip"),
}


@pytest.mark.parametrize("case", sorted(_BAD_IDX))
def test_idx_malformed_files(case):
    blob, msg = _BAD_IDX[case]
    with pytest.raises(ValueError, match=msg):
        read_idx(io.BytesIO(blob))


def test_idx_write_errors():
    np.testing.assert_array_equal(read_idx(io.BytesIO(_GOOD_IDX)), np.arange(12).reshape(3, 4))
    with pytest.raises(TypeError, match="no IDX code"):
        write_idx(io.BytesIO(), np.zeros(2, np.int64))


def test_mnist_dataset(tmp_path):
    imgs = RNG.integers(0, 256, (10, 28, 28)).astype(np.uint8)
    labels = RNG.integers(0, 10, 10).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    ds = MNISTDataset(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte",
                      transform=T.Compose([T.ToTensor(), T.Normalize([0.1307], [0.3081])]))
    assert len(ds) == 10
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and xb.dtype == F.float32 and yb.dtype == F.int64
    np.testing.assert_allclose(xb.read(), (imgs[:4, None] / np.float32(255) - 0.1307) / 0.3081, rtol=1e-5,
                               atol=1e-5)
    assert yb.tolist() == labels[:4].tolist()
    write_idx(tmp_path / "short-labels", labels[:9])
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        MNISTDataset(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "short-labels")


def test_spawn_start_method():
    kw = {"dataset": TensorDataset(X, Y), "batch_size": 6, "shuffle": True, "seed": 2}
    ref = [_np(b) for b in DataLoader(**kw)]
    got = [_np(b) for b in DataLoader(num_workers=2, multiprocessing_context="spawn", timeout=60, **kw)]
    for a, b in zip(ref, got):
        _assert_same(a, b)
    assert len(ref) == len(got) == 4 and _no_children()


_EXIT_SCRIPT = """
import numpy as np, mnn_expr as F
from mnn_nn.data import DataLoader, TensorDataset
F.sum(F.matmul(F.ones((512, 512)), F.ones((512, 512)))).read()
ds = TensorDataset(np.zeros((100, 3), np.float32))
keep = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
it = iter(keep)
next(it)
it2 = iter(DataLoader(ds, batch_size=2, num_workers=2))
next(it2)
import multiprocessing
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
"""


def test_interpreter_exit_with_live_workers_does_not_hang():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    pids = [int(p) for p in r.stdout.split()]
    assert len(pids) == 4
    for pid in pids:  # gone (or at most a zombie waiting for init to reap it)
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(")")[-1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            pass


def test_tensor_dataset_fast_path_equals_generic_collation():
    ds = TensorDataset(X, F.array(Y.astype(np.int32)), np.arange(23, dtype=np.int16))
    generic = Subset(ds, range(23))  # no fast path: per-sample fetch + default_collate
    for a, b in zip(DataLoader(ds, batch_size=6, shuffle=True, seed=4),
                    DataLoader(generic, batch_size=6, shuffle=True, seed=4)):
        _assert_same(_np(a), _np(b))
        assert [v.dtype for v in a] == [F.float32, F.int32, F.int32]  # int16 is stored as int32


class Hanging(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(60)
        return i


def _bad_init(worker_id):
    raise OSError(f"no device for worker {worker_id}")


def test_worker_timeout_and_init_error():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 0.3 s"):
        list(DataLoader(Hanging(), batch_size=2, num_workers=2, timeout=0.3))
    assert time.monotonic() - t0 < 10 and _no_children()  # hung workers were terminated
    with pytest.raises(OSError, match="no device for worker") as info:
        list(DataLoader(TensorDataset(X), batch_size=2, num_workers=2, worker_init_fn=_bad_init))
    assert "during start-up" in str(info.value)
    del info
    assert _no_children()


def test_split_lengths_and_collate_match_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    from torch.utils.data import random_split as torch_split

    for n, fr in ((10, [0.7, 0.3]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]), (13, [1 / 3] * 3), (5, [0.6, 0.4])):
        ours = [len(s) for s in random_split(TensorDataset(np.arange(n)), fr, seed=0)]
        theirs = [len(s) for s in torch_split(list(range(n)), fr, generator=torch.Generator().manual_seed(0))]
        assert ours == theirs, (n, fr)
    samples = [{"x": X[i], "y": (np.int64(Y[i]), [X[i, 0], np.float32(i)])} for i in range(5)]
    ours, theirs = default_collate(samples), torch_collate(samples)
    np.testing.assert_array_equal(ours["x"].read(), theirs["x"].numpy())
    np.testing.assert_array_equal(ours["y"][0].read(), theirs["y"][0].numpy())
    np.testing.assert_array_equal(ours["y"][1][0].read(), theirs["y"][1][0].numpy())
    np.testing.assert_array_equal(ours["y"][1][1].read(), theirs["y"][1][1].numpy())
    assert ours["y"][1][1].dtype == F.float32 and theirs["y"][1][1].dtype == torch.float32
