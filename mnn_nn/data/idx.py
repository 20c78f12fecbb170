"""The IDX file format (MNIST's): ``read_idx``, ``write_idx`` and ``MNISTDataset``.

An IDX file is a 4-byte magic ``00 00 <dtype code> <ndim>``, ``ndim`` big-endian
uint32 dimensions, then the values, big-endian, in C order.  Dtype codes:
0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
Files that start with the gzip magic are decompressed transparently.

>>> import io, numpy as np
>>> buf = io.BytesIO()
>>> write_idx(buf, np.arange(6, dtype=np.int16).reshape(2, 3))
>>> read_idx(io.BytesIO(buf.getvalue())).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any, Callable, Optional, Union

import numpy as np

from .dataset import Dataset, _index

__all__ = ["read_idx", "write_idx", "MNISTDataset"]

_CODES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_BY_DTYPE = {np.dtype(v).newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

PathOrFile = Union[str, "os.PathLike[str]", Any]


def _read_bytes(src: PathOrFile) -> tuple:
    if hasattr(src, "read"):
        return src.read(), getattr(src, "name", "<file>")
    with open(src, "rb") as f:
        return f.read(), os.fspath(src)


def read_idx(path_or_file: PathOrFile) -> np.ndarray:
    """Reads an IDX file (path or binary file object, gzip or not) into a native-endian numpy array.

    Raises ValueError naming the file for a bad magic, an unknown dtype code, a
    truncated file or trailing bytes.

    >>> import io
    >>> read_idx(io.BytesIO(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))).tolist()
    [7, 9]
    """
    data, name = _read_bytes(path_or_file)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"read_idx: {name}: corrupt gzip data ({e})") from None
    if len(data) < 4:
        raise ValueError(f"read_idx: {name}: truncated file ({len(data)} bytes; the header alone is 4+ bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"read_idx: {name}: bad magic {data[:4].hex()} (an IDX file starts with 00 00)")
    code, ndim = data[2], data[3]
    if code not in _CODES:
        raise ValueError(f"read_idx: {name}: unknown dtype code 0x{code:02X} (expected one of "
                         f"{', '.join(f'0x{c:02X}' for c in _CODES)})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {name}: truncated file ({len(data)} bytes, but the header of a {ndim}-d "
                         f"array takes {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _CODES[code]
    count = 1
    for d in dims:
        count *= d
    need = header + count * dtype.itemsize
    if len(data) < need:
        raise ValueError(f"read_idx: {name}: truncated file: dims {dims} of {dtype.name} need {need} bytes, "
                         f"the file has {len(data)}")
    if len(data) > need:
        raise ValueError(f"read_idx: {name}: size mismatch: dims {dims} of {dtype.name} take {need} bytes, "
                         f"the file has {len(data) - need} more")
    arr = np.frombuffer(data, dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


def write_idx(path_or_file: PathOrFile, array: Any, compress: Optional[bool] = None) -> None:
    """Writes ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file.

    ``compress`` gzips it (default: when the path ends in ``.gz``).

    >>> import io
    >>> buf = io.BytesIO(); write_idx(buf, np.array([1.5], np.float32)); buf.getvalue()[:4].hex()
    '00000d01'
    """
    a = np.asarray(array)
    key = a.dtype.newbyteorder("=") if a.dtype.itemsize > 1 else a.dtype
    if key not in _BY_DTYPE:
        raise TypeError(f"write_idx: numpy dtype {a.dtype} has no IDX code (use uint8, int8, int16, int32, "
                        "float32 or float64)")
    if a.ndim > 255 or any(d >= 1 << 32 for d in a.shape):
        raise ValueError(f"write_idx: shape {a.shape} does not fit the IDX header")
    code = _BY_DTYPE[key]
    blob = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + \
        np.ascontiguousarray(a, dtype=_CODES[code]).tobytes()
    is_file = hasattr(path_or_file, "write")
    if compress is None:
        compress = not is_file and os.fspath(path_or_file).endswith(".gz")
    if compress:
        blob = gzip.compress(blob, mtime=0)
    if is_file:
        path_or_file.write(blob)
    else:
        with open(path_or_file, "wb") as f:
            f.write(blob)


class MNISTDataset(Dataset):
    """MNIST-style images + labels from two IDX files (``train-images-idx3-ubyte[.gz]`` etc.).

    A sample is ``(image, label)``: the ``(H, W)`` uint8 image passed through
    ``transform`` (e.g. ``transforms.ToTensor()`` for float32 ``(1, H, W)`` in [0, 1]) and
    the label as a numpy int64 scalar through ``target_transform``.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> write_idx(os.path.join(d, "x.gz"), np.zeros((2, 28, 28), np.uint8))
    >>> write_idx(os.path.join(d, "y"), np.array([3, 4], np.uint8))
    >>> ds = MNISTDataset(os.path.join(d, "x.gz"), os.path.join(d, "y"))
    >>> len(ds), ds[1][0].shape, int(ds[1][1])
    (2, (28, 28), 4)
    """

    def __init__(self, images_path: PathOrFile, labels_path: PathOrFile,
                 transform: Optional[Callable[[Any], Any]] = None,
                 target_transform: Optional[Callable[[Any], Any]] = None) -> None:
        super().__init__()
        self.images = read_idx(images_path)
        self.labels = read_idx(labels_path)
        if self.images.ndim != 3:
            raise ValueError(f"MNISTDataset: images must be a 3-d (N, H, W) IDX array, got shape {self.images.shape}")
        if self.labels.ndim != 1:
            raise ValueError(f"MNISTDataset: labels must be a 1-d IDX array, got shape {self.labels.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"MNISTDataset: {len(self.images)} images but {len(self.labels)} labels")
        self.transform = transform
        self.target_transform = target_transform

    def __getitem__(self, index: int) -> tuple:
        i = _index(index, len(self.labels), "MNISTDataset")
        img: Any = self.images[i]
        label: Any = np.int64(self.labels[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __len__(self) -> int:
        return len(self.labels)
