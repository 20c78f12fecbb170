"""DataLoader: batches from a data set, optionally loaded by worker processes.

>>> import numpy as np
>>> from mnn_nn.data import DataLoader, TensorDataset
>>> ds = TensorDataset(np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5))
>>> [(x.shape, y.tolist()) for x, y in DataLoader(ds, batch_size=2)]
[((2, 2), [0, 1]), ((2, 2), [2, 3]), ((1, 2), [4])]

Batches are built by ``collate_fn`` (default :func:`default_collate`: numpy
arrays, numbers and Vars are stacked into Vars along a new first axis; tuples,
lists and dicts are collated field by field).  With ``num_workers > 0`` worker
processes (``fork`` on Linux, ``spawn`` elsewhere) load and collate batches
ahead of time (``prefetch_factor`` batches per worker) and send numpy arrays;
the main process delivers the batches in order and turns the arrays into Vars.
A worker's exception is raised again in the main process with the worker's
traceback.  Workers are shut down when an epoch ends, when the iterator is
dropped (``break``, garbage collection) and at interpreter exit.

MNN's loader interface is there too: ``loader.iter_number``, ``loader.size``,
``loader.reset()`` and ``loader.next()`` (returns ``[[inputs], [targets]]`` for
MNN-style data sets).
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import operator
import os
import pickle
import queue
import random
import sys
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

import mnn_expr
from mnn_expr import Var, asarray

from .sampler import BatchSampler, RandomSampler, SeedLike, SequentialSampler, make_rng

__all__ = ["DataLoader", "default_collate", "get_worker_info", "WorkerInfo"]

_POLL_S = 0.2          # how often a waiting side checks whether the other side died
_JOIN_TIMEOUT_S = 2.0  # how long shutdown waits for busy workers before terminating them


# --------------------------------------------------------------------------- collation

class _VarBox:
    """A numpy array that becomes a Var in the main process (Vars themselves do not pickle)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self) -> Any:
        return (_VarBox, (self.array,))


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _map_tree(fn: Callable[[Any], Any], x: Any) -> Any:
    """Applies ``fn`` to the leaves of a nest of tuples/lists/dicts (keeping the container types)."""
    if isinstance(x, Mapping):
        try:
            return type(x)({k: _map_tree(fn, v) for k, v in x.items()})
        except TypeError:
            return {k: _map_tree(fn, v) for k, v in x.items()}
    if _is_namedtuple(x):
        return type(x)(*(_map_tree(fn, v) for v in x))
    if isinstance(x, (tuple, list)):
        items = [_map_tree(fn, v) for v in x]
        try:
            return type(x)(items)
        except TypeError:  # a sequence subclass with another constructor
            return tuple(items) if isinstance(x, tuple) else items
    return fn(x)


def _pack(x: Any) -> Any:
    """Vars -> picklable boxes (in a worker)."""
    return _map_tree(lambda v: _VarBox(v.read()) if isinstance(v, Var) else v, x)


def _unpack(x: Any) -> Any:
    """Boxes -> Vars (in the main process)."""
    return _map_tree(lambda v: asarray(v.array) if isinstance(v, _VarBox) else v, x)


def _stack(arrays: list, where: str) -> np.ndarray:
    first = arrays[0].shape
    for k, a in enumerate(arrays):
        if a.shape != first:
            raise ValueError(f"default_collate: samples 0 and {k}{where} have different shapes {first} and "
                             f"{a.shape}; use a collate_fn that pads them, or batch_size=1")
    if arrays[0].dtype.kind in "OUSV":
        raise TypeError(f"default_collate: cannot stack arrays of numpy dtype {arrays[0].dtype}{where}")
    return np.stack(arrays)


def _collate_np(batch: Sequence[Any], where: str = "") -> Any:
    """default_collate with the stacked leaves still numpy arrays (in boxes)."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    elem = batch[0]
    if isinstance(elem, (Var, np.ndarray)):
        return _VarBox(_stack([b.read() if isinstance(b, Var) else np.asarray(b) for b in batch], where))
    if isinstance(elem, np.generic):
        return _VarBox(np.array(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return _VarBox(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return _VarBox(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _VarBox(np.array(batch, dtype=np.float32))  # Python floats: our default float
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(batch)
    if isinstance(elem, Mapping):
        keys = list(elem.keys())
        for k, d in enumerate(batch):
            if not isinstance(d, Mapping) or set(d.keys()) != set(keys):
                raise ValueError(f"default_collate: sample {k}{where} has keys "
                                 f"{sorted(map(str, d.keys())) if isinstance(d, Mapping) else type(d).__name__}, "
                                 f"sample 0 has {sorted(map(str, keys))}")
        out = {key: _collate_np([d[key] for d in batch], f"{where}[{key!r}]") for key in keys}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if isinstance(elem, (tuple, list)):
        n = len(elem)
        for k, s in enumerate(batch):
            if not isinstance(s, (tuple, list)) or len(s) != n:
                raise ValueError(f"default_collate: sample {k}{where} has "
                                 f"{len(s) if isinstance(s, (tuple, list)) else type(s).__name__} fields, "
                                 f"sample 0 has {n}")
        fields = [_collate_np([s[j] for s in batch], f"{where}[{j}]") for j in range(n)]
        if _is_namedtuple(elem):
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: cannot batch samples of type {type(elem).__name__}{where}; "
                    "samples must be nests of tuples/lists/dicts of numpy arrays, numbers or Vars "
                    "(or pass a collate_fn)")


def default_collate(batch: Sequence[Any]) -> Any:
    """Stacks a list of samples into one batch.

    numpy arrays, numpy scalars and Vars are stacked along a new first axis into a
    Var (keeping their dtype); Python ints become int64, floats float32 (our default
    float), bools bool; tuples, lists and dicts are collated field by field; strings
    and None are returned as lists.  Samples of different shapes raise ValueError.

    >>> b = default_collate([(np.ones(2, np.float32), 0), (np.zeros(2, np.float32), 1)])
    >>> b[0].shape, b[1].tolist()
    ((2, 2), [0, 1])
    """
    return _unpack(_collate_np(batch))


# --------------------------------------------------------------------------- workers

class WorkerInfo(NamedTuple):
    """What :func:`get_worker_info` returns inside a worker process."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: Optional[WorkerInfo] = None


def get_worker_info() -> Optional[WorkerInfo]:
    """Inside a DataLoader worker: its id, the number of workers, its seed and its copy of the data set.

    ``None`` in the main process.

    >>> get_worker_info() is None
    True
    """
    return _worker_info


class _ExceptionWrapper:
    """A worker's exception, sent to the main process as its type's name and traceback text."""

    def __init__(self, where: str) -> None:
        exc_type, exc, tb = sys.exc_info()
        self.type_ref = (getattr(exc_type, "__module__", "builtins"), getattr(exc_type, "__qualname__", "Exception"))
        self.where = where
        self.text = "".join(traceback.format_exception(exc_type, exc, tb))

    def reraise(self) -> None:
        module, name = self.type_ref
        exc_type: Any = sys.modules.get(module)
        for part in name.split("."):
            exc_type = getattr(exc_type, part, None)
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)) or exc_type is KeyError:
            exc_type = RuntimeError  # unknown here, or KeyError (whose str() would quote the whole message)
        msg = f"Caught {name} in {self.where}.\nOriginal traceback:\n{self.text}"
        try:
            exc = exc_type(msg)
        except Exception:  # a constructor that needs other arguments
            exc = RuntimeError(msg)
        raise exc


def _fetch(dataset: Any, indices: list, collate_fn: Any, in_worker: bool) -> Any:
    """One batch with its Vars boxed (``_unpack`` makes them Vars).

    Uses ``dataset.__getitems__(indices)`` when there is one, and a data set's own
    stacking (``_default_batch``, e.g. TensorDataset's single gather) with the default collation.
    """
    if collate_fn is None:
        direct = getattr(dataset, "_default_batch", None)
        if direct is not None:
            return tuple(_VarBox(a) for a in direct(indices))
    fetch = getattr(dataset, "__getitems__", None)
    samples = fetch(indices) if fetch is not None else [dataset[i] for i in indices]
    if collate_fn is None:
        return _collate_np(samples)
    return _pack(collate_fn(samples)) if in_worker else collate_fn(samples)


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _seed_worker(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    mnn_expr.random.seed(seed)
    from .transforms import _reseed_random_transforms

    _reseed_random_transforms(seed)


def _worker_loop(dataset: Any, index_queue: Any, result_queue: Any, done_event: Any, collate_fn: Any,
                 seed: int, worker_id: int, num_workers: int, init_fn: Any, threads: Optional[int],
                 parent_pid: int) -> None:
    """Body of a worker process: fetch + collate the batches whose indices arrive on ``index_queue``."""
    global _worker_info
    init_error = None
    try:
        if threads is not None:
            mnn_expr.set_thread_number(threads)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        _seed_worker(seed)
        if init_fn is not None:
            init_fn(worker_id)
    except Exception:
        init_error = _ExceptionWrapper(f"DataLoader worker {worker_id} (pid {os.getpid()}) during start-up")
    try:
        while True:
            try:
                task = index_queue.get(timeout=_POLL_S * 5)
            except queue.Empty:
                if done_event.is_set() or os.getppid() != parent_pid:
                    break
                continue
            if task is None or done_event.is_set():
                break
            epoch, idx, indices = task
            if init_error is not None:
                payload = _dumps(init_error)
            else:
                try:
                    payload = _dumps(_fetch(dataset, indices, collate_fn, in_worker=True))
                except Exception:
                    payload = _dumps(_ExceptionWrapper(f"DataLoader worker {worker_id} (pid {os.getpid()})"))
            result_queue.put((epoch, idx, payload))
            del payload
    except KeyboardInterrupt:
        pass
    finally:
        # Do not wait at exit for unread results to be flushed into the pipe.
        result_queue.cancel_join_thread()
        result_queue.close()


def _default_context() -> Any:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _shutdown_all() -> None:
    for it in list(_LIVE):
        it._shutdown()


atexit.register(_shutdown_all)


# --------------------------------------------------------------------------- iterators

class _SingleProcessIter:
    def __init__(self, loader: DataLoader) -> None:
        self._dataset = loader.dataset
        self._collate = loader.collate_fn
        self._batches = iter(loader.batch_sampler)

    def __iter__(self) -> _SingleProcessIter:
        return self

    def __next__(self) -> Any:
        batch = _fetch(self._dataset, next(self._batches), self._collate, in_worker=False)
        return _unpack(batch) if self._collate is None else batch


class _MultiProcessIter:
    """Keeps ``prefetch_factor * num_workers`` batches in flight and delivers them in order."""

    def __init__(self, loader: DataLoader, base_seed: int) -> None:
        self._shut = True
        self._owner_pid = os.getpid()
        ctx = loader.multiprocessing_context or _default_context()
        self._n = loader.num_workers
        self._prefetch = loader.prefetch_factor * self._n
        self._timeout = loader.timeout
        self._batch_sampler = loader.batch_sampler
        self._done = ctx.Event()
        self._result_queue = ctx.Queue()
        self._index_queues: list = []
        self._workers: list = []
        self._epoch = -1
        self._shut = False
        _LIVE.add(self)
        try:
            for wid in range(self._n):
                iq = ctx.Queue()
                w = ctx.Process(target=_worker_loop, daemon=True,
                                args=(loader.dataset, iq, self._result_queue, self._done, loader.collate_fn,
                                      base_seed + wid, wid, self._n, loader.worker_init_fn,
                                      loader.worker_threads, os.getpid()))
                w.start()
                self._index_queues.append(iq)
                self._workers.append(w)
        except BaseException:
            self._shutdown()
            raise
        self._start_epoch()

    def _start_epoch(self) -> None:
        self._epoch += 1
        self._batches = iter(self._batch_sampler)
        self._sampler_done = False
        self._send_idx = 0
        self._rcvd_idx = 0
        self._reorder: dict = {}
        self._cycle = itertools.cycle(range(self._n))
        for _ in range(self._prefetch):
            self._put_task()

    def _put_task(self) -> None:
        if self._sampler_done:
            return
        indices = next(self._batches, None)
        if indices is None:
            self._sampler_done = True
            return
        self._index_queues[next(self._cycle)].put((self._epoch, self._send_idx, list(indices)))
        self._send_idx += 1

    def __iter__(self) -> _MultiProcessIter:
        return self

    def _get(self) -> tuple:
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            try:
                return self._result_queue.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [w for w in self._workers if not w.is_alive()]
                if dead:
                    desc = ", ".join(f"pid {w.pid} exit code {w.exitcode}" for w in dead)
                    self._shutdown(join_timeout=0.2)
                    raise RuntimeError(f"DataLoader worker(s) exited unexpectedly ({desc})") from None
                if deadline is not None and time.monotonic() > deadline:
                    self._shutdown(join_timeout=0.2)
                    raise RuntimeError(f"DataLoader timed out after {self._timeout} s waiting for a batch "
                                       f"from its workers") from None

    def __next__(self) -> Any:
        if self._shut:
            raise StopIteration
        while True:
            if self._rcvd_idx in self._reorder:
                payload = self._reorder.pop(self._rcvd_idx)
                break
            if self._sampler_done and self._rcvd_idx >= self._send_idx:
                self._end_of_epoch()
                raise StopIteration
            epoch, idx, payload = self._get()
            if epoch != self._epoch:
                continue  # a late result of an epoch that was abandoned (persistent workers)
            if idx == self._rcvd_idx:
                break
            self._reorder[idx] = payload
        self._rcvd_idx += 1
        self._put_task()
        data = pickle.loads(payload)
        if isinstance(data, _ExceptionWrapper):
            self._shutdown()
            data.reraise()
        return _unpack(data)

    def _end_of_epoch(self) -> None:
        self._shutdown()

    def _shutdown(self, join_timeout: float = _JOIN_TIMEOUT_S) -> None:
        if getattr(self, "_shut", True) or os.getpid() != self._owner_pid:
            return  # already down, or a copy inherited by a forked process: only the owner shuts down
        self._shut = True
        try:
            self._done.set()
            for q in self._index_queues:
                try:
                    q.put(None)
                except Exception:
                    pass
            deadline = time.monotonic() + join_timeout
            for w in self._workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
            for w in self._workers:
                if w.is_alive():
                    w.terminate()
                    w.join(timeout=1.0)
                if w.is_alive():
                    w.kill()
                    w.join(timeout=1.0)
        finally:
            for q in [*self._index_queues, self._result_queue]:
                try:
                    q.cancel_join_thread()
                    q.close()
                except Exception:
                    pass
            _LIVE.discard(self)

    def __del__(self) -> None:
        try:
            self._shutdown()
        except Exception:
            pass


class _PersistentIter(_MultiProcessIter):
    """Workers that stay up between epochs; ``restart()`` begins the next epoch."""

    def _end_of_epoch(self) -> None:
        pass

    def restart(self) -> _PersistentIter:
        self._reorder.clear()
        self._start_epoch()
        return self


# --------------------------------------------------------------------------- DataLoader

class DataLoader:
    """Iterates over a data set in batches.

    Args:
        dataset: a map-style data set (``__getitem__`` and ``__len__``).
        batch_size: samples per batch.
        shuffle: visit the samples in a new random order each epoch (seeded by ``seed``).
        sampler: the order of the indices (exclusive with ``shuffle``).  An int here is
            taken as MNN's positional ``num_workers``.
        drop_last: drop the last batch when it is short.
        collate_fn: list of samples -> batch (default :func:`default_collate`).  With
            workers it runs in the workers; the Vars it returns reach the main process.
        num_workers: worker processes (0: load in the main process).
        prefetch_factor: batches loaded ahead per worker.
        seed: seeds the shuffle order and the workers' random generators.
        persistent_workers: keep the workers up between epochs.
        batch_sampler: yields lists of indices (exclusive with batch_size/shuffle/sampler/drop_last).
        timeout: seconds to wait for a batch from the workers (0: forever; dead workers
            are always detected).
        worker_init_fn: called with the worker id in each worker after seeding.
        worker_threads: native threads per worker (default 1, avoids oversubscription;
            None keeps the default).
        multiprocessing_context: a ``multiprocessing`` context or start-method name.

    >>> from mnn_nn.data import TensorDataset
    >>> ds = TensorDataset(np.arange(6), np.arange(6) * 10)
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    >>> len(loader), sorted(np.concatenate([x.read() for x, _ in loader]).tolist())
    (2, [0, 1, 2, 3, 4, 5])
    """

    def __init__(self, dataset: Any, batch_size: Optional[int] = 1, shuffle: bool = False,
                 sampler: Optional[Any] = None, drop_last: bool = False, collate_fn: Optional[Callable] = None,
                 num_workers: int = 0, prefetch_factor: int = 2, seed: SeedLike = None,
                 persistent_workers: bool = False, *, batch_sampler: Optional[Any] = None, timeout: float = 0,
                 worker_init_fn: Optional[Callable[[int], None]] = None, worker_threads: Optional[int] = 1,
                 multiprocessing_context: Any = None) -> None:
        if isinstance(sampler, (int, np.integer)) and not isinstance(sampler, bool):
            num_workers, sampler = int(sampler), None  # MNN: DataLoader(dataset, batch_size, shuffle, num_workers)
        if isinstance(num_workers, bool) or not hasattr(num_workers, "__index__") or operator.index(num_workers) < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if isinstance(prefetch_factor, bool) or not hasattr(prefetch_factor, "__index__") or prefetch_factor < 1:
            raise ValueError(f"DataLoader: prefetch_factor must be an int >= 1, got {prefetch_factor!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout must be >= 0, got {timeout}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers needs num_workers > 0")
        self.dataset = dataset
        self._seed_rng = make_rng(seed)
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler is exclusive with batch_size, shuffle, sampler "
                                 "and drop_last")
            batch_size, drop_last = None, False
        else:
            if batch_size is None or isinstance(batch_size, bool) or not hasattr(batch_size, "__index__") \
                    or operator.index(batch_size) < 1:
                raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
            if sampler is not None and shuffle:
                raise ValueError("DataLoader: sampler is exclusive with shuffle")
            if sampler is None:
                sampler = (RandomSampler(dataset, generator=np.random.default_rng(self._seed_rng.integers(1 << 62)))
                           if shuffle else SequentialSampler(dataset))
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        self.num_workers = operator.index(num_workers)
        self.prefetch_factor = operator.index(prefetch_factor)
        self.persistent_workers = bool(persistent_workers)
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.worker_threads = worker_threads
        if isinstance(multiprocessing_context, str):
            multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.multiprocessing_context = multiprocessing_context
        self._persistent: Optional[_PersistentIter] = None
        self._mnn_iter: Optional[Iterator] = None

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._persistent is not None and not self._persistent._shut:
                return self._persistent.restart()
            self._persistent = _PersistentIter(self, self._base_seed())
            return self._persistent
        return _MultiProcessIter(self, self._base_seed())

    def _base_seed(self) -> int:
        return int(self._seed_rng.integers(0, 1 << 62))

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def shutdown(self) -> None:
        """Stops the persistent workers (and those of the ``reset()``/``next()`` epoch) now."""
        for it in (self._persistent, self._mnn_iter):
            if isinstance(it, _MultiProcessIter):
                it._shutdown()
        self._persistent = None
        self._mnn_iter = None

    # MNN's interface --------------------------------------------------------

    @property
    def iter_number(self) -> int:
        """Batches per epoch (MNN)."""
        return len(self)

    @property
    def size(self) -> int:
        """Number of samples in the data set (MNN)."""
        return len(self.dataset)

    def reset(self) -> None:
        """Starts a new epoch for :meth:`next` (MNN)."""
        old, self._mnn_iter = self._mnn_iter, None
        if isinstance(old, _MultiProcessIter) and old is not self._persistent:
            old._shutdown()
        self._mnn_iter = iter(self)

    def next(self) -> Any:
        """The next batch of the current epoch (MNN); a tuple batch comes back as a list.

        Starts an epoch if none was started; raises StopIteration at the end of the
        epoch (call :meth:`reset`).
        """
        if self._mnn_iter is None:
            self.reset()
        batch = next(self._mnn_iter)  # type: ignore[arg-type]
        return list(batch) if isinstance(batch, tuple) and not _is_namedtuple(batch) else batch

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:
            pass

