"""Map-style data sets: Dataset, TensorDataset, Subset, ConcatDataset, random_split.

A data set maps an index ``0 <= i < len(ds)`` to one sample.  A sample is any
nest of tuples/lists/dicts whose leaves are numpy arrays, numbers or Vars; the
:class:`~mnn_nn.data.DataLoader` stacks samples into batches.  MNN-style data
sets return ``([input Vars], [target Vars])``.

>>> import numpy as np
>>> from mnn_nn.data import TensorDataset
>>> ds = TensorDataset(np.arange(6).reshape(3, 2), np.array([0, 1, 0]))
>>> len(ds), ds[1][0].tolist(), int(ds[1][1])
(3, [2, 3], 1)
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from mnn_expr import Var, asarray

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split"]


def _index(i: Any, n: int, who: str) -> int:
    """A non-negative index into a sequence of ``n`` items (negative indices count from the end)."""
    try:
        i = operator.index(i)
    except TypeError:
        raise TypeError(f"{who}: index must be an integer, got {type(i).__name__}") from None
    if not -n <= i < n:
        raise IndexError(f"{who}: index {i} is out of range for a data set of {n} samples")
    return i % n


class Dataset:
    """Base class of map-style data sets: implement ``__getitem__(index)`` and ``__len__()``.

    Subclasses of MNN's ``MNN.data.Dataset`` (which call ``super().__init__()`` and
    return ``([inputs], [targets])``) work unchanged.  ``a + b`` concatenates.

    >>> class Squares(Dataset):
    ...     def __getitem__(self, i): return i * i
    ...     def __len__(self): return 4
    >>> [Squares()[i] for i in range(4)], len(Squares() + Squares())
    ([0, 1, 4, 9], 8)
    """

    def __init__(self) -> None:
        pass

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows ``(a[i], b[i], ...)`` of equally long arrays (numpy arrays or Vars).

    Rows of numpy arrays are numpy arrays (views); rows of Vars are Vars.

    >>> ds = TensorDataset(np.zeros((5, 3), np.float32), np.arange(5))
    >>> x, y = ds[-1]
    >>> x.shape, int(y)
    ((3,), 4)
    """

    def __init__(self, *arrays: Any) -> None:
        super().__init__()
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        self._is_var = [isinstance(a, Var) for a in arrays]
        self.arrays = tuple(a.read() if isinstance(a, Var) else np.asarray(a) for a in arrays)
        for k, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {k} is 0-d; every array needs a first (sample) axis")
        sizes = [a.shape[0] for a in self.arrays]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: arrays have different first dimensions {sizes}; they must be equal")
        self._n = sizes[0]

    def __getitem__(self, index: int) -> tuple:
        i = _index(index, self._n, "TensorDataset")
        return tuple(asarray(a[i]) if v else a[i] for a, v in zip(self.arrays, self._is_var))

    def _default_batch(self, indices: Sequence[int]) -> tuple:
        """The rows at ``indices`` stacked (what default collation of the samples gives), by one gather."""
        idx = np.asarray([_index(i, self._n, "TensorDataset") for i in indices], dtype=np.intp)
        return tuple(a[idx] for a in self.arrays)

    def __len__(self) -> int:
        return self._n


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> Subset(TensorDataset(np.arange(10)), [7, 2])[0][0].item()
    7
    """

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        super().__init__()
        n = len(dataset)
        self.dataset = dataset
        self.indices = [_index(i, n, "Subset") for i in indices]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[_index(index, len(self.indices), "Subset")]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several data sets, one after the other.

    >>> ds = ConcatDataset([TensorDataset(np.arange(3)), TensorDataset(np.arange(10, 12))])
    >>> len(ds), ds[3][0].item(), ds[-1][0].item()
    (5, 10, 11)
    """

    def __init__(self, datasets: Sequence[Any]) -> None:
        super().__init__()
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: needs at least one data set")
        self.cumulative_sizes: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __getitem__(self, index: int) -> Any:
        i = _index(index, len(self), "ConcatDataset")
        k = bisect.bisect_right(self.cumulative_sizes, i)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][i - start]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]


def random_split(dataset: Any, lengths: Sequence[Union[int, float]], seed: Optional[Any] = None) -> list[Subset]:
    """Splits ``dataset`` into non-overlapping random :class:`Subset`\\ s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1
    (counts are floored, and the remainder is dealt one by one to the first parts,
    as PyTorch does).  ``seed`` (int or ``numpy.random.Generator``) makes it reproducible.

    >>> a, b = random_split(TensorDataset(np.arange(10)), [0.7, 0.3], seed=0)
    >>> len(a), len(b), sorted(a.indices + b.indices) == list(range(10))
    (7, 3, True)
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        counts = [int(x) for x in lengths]
        if any(c < 0 for c in counts) or sum(counts) != n:
            raise ValueError(f"random_split: lengths {counts} must be non-negative and sum to the data set "
                             f"size {n}")
    else:
        fr = [float(x) for x in lengths]
        if any(f < 0 or f > 1 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
            raise ValueError(f"random_split: fractions {fr} must lie in [0, 1] and sum to 1")
        counts = [int(math.floor(n * f)) for f in fr]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(n).tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c]))
        start += c
    return out
