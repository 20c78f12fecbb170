"""Samplers: the order in which a DataLoader visits a data set, and how it groups it into batches.

>>> from mnn_nn.data import BatchSampler, RandomSampler, SequentialSampler
>>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
[[0, 1], [2, 3], [4]]
>>> s = RandomSampler(range(4), seed=0)
>>> sorted(s) == [0, 1, 2, 3], list(RandomSampler(range(4), seed=0)) == list(RandomSampler(range(4), seed=0))
(True, True)
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Optional, Union

import numpy as np

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "BatchSampler"]

SeedLike = Union[None, int, np.random.Generator]


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int seed, an existing Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)


class Sampler:
    """Base class: an iterable of indices (or of index lists, for batch samplers) with a length."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """Indices ``0, 1, ..., len(data_source) - 1``.

    >>> list(SequentialSampler([10, 20, 30]))
    [0, 1, 2]
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the indices, new on every pass, reproducible from ``seed``.

    With ``replacement=True`` draws ``num_samples`` indices with replacement.  The
    generator is seeded once, so pass ``k`` of two samplers with the same seed gives
    the same order, and successive passes differ.

    >>> s = RandomSampler(range(6), seed=1)
    >>> e1, e2 = list(s), list(s)
    >>> sorted(e1) == list(range(6)), e1 != e2
    (True, True)
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: Optional[int] = None,
                 seed: SeedLike = None, generator: Optional[np.random.Generator] = None) -> None:
        self.data_source = data_source
        self.replacement = bool(replacement)
        if num_samples is not None:
            num_samples = operator.index(num_samples)
            if num_samples < 0:
                raise ValueError(f"RandomSampler: num_samples must be >= 0, got {num_samples}")
            if not self.replacement and num_samples > len(data_source):
                raise ValueError(f"RandomSampler: num_samples={num_samples} exceeds the data set size "
                                 f"{len(data_source)} without replacement")
        self._num_samples = num_samples
        self.generator = make_rng(generator if generator is not None else seed)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        if self.replacement:
            if n == 0 and self.num_samples:
                raise ValueError("RandomSampler: cannot draw from an empty data set")
            return iter(self.generator.integers(0, max(n, 1), size=self.num_samples).tolist())
        return iter(self.generator.permutation(n)[: self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, new on every pass.

    >>> sorted(SubsetRandomSampler([3, 5, 7], seed=0))
    [3, 5, 7]
    """

    def __init__(self, indices: Iterable[int], seed: SeedLike = None) -> None:
        self.indices = [operator.index(i) for i in indices]
        self.generator = make_rng(seed)

    def __iter__(self) -> Iterator[int]:
        return iter([self.indices[k] for k in self.generator.permutation(len(self.indices)).tolist()])

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; ``drop_last`` drops a short last batch.

    >>> list(BatchSampler(range(5), 2, drop_last=True)), len(BatchSampler(range(5), 2, False))
    ([[0, 1], [2, 3]], 3)
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not hasattr(batch_size, "__index__") or operator.index(batch_size) <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = operator.index(batch_size)
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
