"""Data sets, samplers, data loaders, transforms and the IDX (MNIST) reader.

PyTorch-style names; MNN's ``MNN.data.Dataset`` / ``MNN.data.DataLoader`` are the
same classes (``DataLoader`` also has MNN's ``iter_number``, ``size``, ``reset()``
and ``next()``).

>>> import numpy as np
>>> from mnn_nn.data import DataLoader, TensorDataset
>>> x, y = next(iter(DataLoader(TensorDataset(np.ones((4, 2), np.float32), np.arange(4)), batch_size=4)))
>>> x.shape, y.tolist()
((4, 2), [0, 1, 2, 3])
"""

from . import transforms
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .idx import MNISTDataset, read_idx, write_idx
from .loader import DataLoader, WorkerInfo, default_collate, get_worker_info
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "Sampler", "SequentialSampler",
           "RandomSampler", "SubsetRandomSampler", "BatchSampler", "DataLoader", "default_collate",
           "get_worker_info", "WorkerInfo", "transforms", "read_idx", "write_idx", "MNISTDataset"]
