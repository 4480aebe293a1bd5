"""Executors: where tasks run. One process, a local process pool, or a Dask cluster.

Every executor offers the same two calls, used by the driver in
:func:`alignkit.sweep.run_sweep`: ``submit(task)`` returns a handle, and
``wait(handles)`` blocks until at least one finished and returns the finished
ones with their :class:`~alignkit.sweep.tasks.TaskOutcome`. The driver submits a
task only once its dependencies succeeded, so a cluster never sees a task
whose inputs are missing, and the driver alone appends to the results table.

Dask is imported only by :class:`DaskExecutor` (``pip install "alignkit[dask]"``).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Iterable
from typing import Any, Protocol

from alignkit.errors import InputError
from alignkit.sweep.tasks import Task, TaskOutcome, execute_task

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "make_executor"]


class Executor(Protocol):
    """What the driver needs from an executor."""

    description: str

    def submit(self, task: Task) -> Any:
        """Start a task; return a handle."""

    def wait(self, handles: Iterable[Any]) -> list[tuple[Any, TaskOutcome]]:
        """Block until at least one handle finished; return the finished ones."""

    def close(self) -> None:
        """Release processes and connections."""


class _Deferred:
    """A task queued in this process; it runs when the driver waits for it."""

    __slots__ = ("task", "outcome")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.outcome: TaskOutcome | None = None


class LocalExecutor:
    """Tasks in this process (``workers=1``) or in a pool of ``workers`` processes.

    In this process, tasks run one at a time in the order submitted, each when
    the driver waits for it, so every finished task is recorded before the next
    one starts. A pool uses the ``spawn`` start method, so every worker starts
    from a clean interpreter (no forked torch or Numba thread pools).
    """

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise InputError(f"--workers {workers}: expected 1 or more")
        self.workers = workers
        self.description = "local (this process)" if workers == 1 else f"local pool of {workers} processes"
        self._pool: cf.ProcessPoolExecutor | None = None
        if workers > 1:
            self._pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: Task) -> cf.Future[TaskOutcome] | _Deferred:
        if self._pool is not None:
            return self._pool.submit(execute_task, task)
        return _Deferred(task)

    def wait(self, handles: Iterable[Any]) -> list[tuple[Any, TaskOutcome]]:
        handles = list(handles)
        if self._pool is None:
            first = handles[0]
            first.outcome = execute_task(first.task)
            return [(first, first.outcome)]
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [(f, _outcome(f)) for f in handles if f in done]  # in submission order

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Tasks on a Dask cluster: an existing scheduler, or a local cluster started here.

    Args:
        scheduler: address of a running scheduler (``tcp://host:8786``), or a
            ``distributed.Client``.
        workers: without ``scheduler``: start a ``LocalCluster`` of this many
            worker processes, one thread each (a task runs torch and Numba with
            their own threads).

    Workers must have alignkit installed and reach the store (a shared folder or
    an object-storage URL) and the study's input files at the same paths.
    """

    def __init__(self, scheduler: Any = None, workers: int | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise InputError(
                "--executor dask needs Dask: pip install \"alignkit[dask]\" "
                "(or pip install \"dask[distributed]\")"
            ) from None
        self._distributed = distributed
        self._cluster = None
        self._own_client = True
        if scheduler is not None and not isinstance(scheduler, str):
            self.client = scheduler
            self._own_client = False
            self.description = f"dask ({self.client.scheduler.address})"
            return
        if scheduler is not None:
            try:
                self.client = distributed.Client(scheduler, timeout="30s")
            except OSError as exc:
                raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
            self.description = f"dask scheduler {scheduler}"
            return
        n = workers or 2
        if n < 1:
            raise InputError(f"--workers {n}: expected 1 or more")
        self._cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
        )
        self.client = distributed.Client(self._cluster)
        self.description = f"dask local cluster of {n} workers"

    def submit(self, task: Task) -> Any:
        # pure=False: a rerun of a failed task is a new computation, never a cached result
        return self.client.submit(execute_task, task, key=f"alignkit-{task.kind}-{task.key[7:23]}",
                                  pure=False, retries=0)

    def wait(self, handles: Iterable[Any]) -> list[tuple[Any, TaskOutcome]]:
        handles = list(handles)
        done, _ = self._distributed.wait(handles, return_when="FIRST_COMPLETED")
        out = []
        for f in [h for h in handles if h in done]:  # in submission order
            try:
                outcome = f.result()
            except Exception as exc:  # a worker died or the task could not be unpickled
                outcome = TaskOutcome("", False, error=f"{type(exc).__name__}: {exc}",
                                      error_type=type(exc).__name__)
            out.append((f, outcome))
        return out

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            import logging

            # Worker processes that ran Numba's OpenMP threads next to torch's can
            # linger at exit; the nanny then ends them, with a warning that is noise
            # here (every result has already come back).
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                self._cluster.close()
            finally:
                nanny.setLevel(level)
            self._cluster = None


def _outcome(fut: cf.Future[TaskOutcome]) -> TaskOutcome:
    try:
        return fut.result()
    except Exception as exc:  # a pool worker died (killed, out of memory)
        return TaskOutcome("", False,
                           error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)


def make_executor(kind: str = "local", *, workers: int | None = None,
                  scheduler: str | None = None) -> Executor:
    """An executor by name.

    Args:
        kind: ``local`` or ``dask``.
        workers: local: processes (default 1: this process); dask: workers of a
            local cluster (default 2) when no scheduler is given.
        scheduler: dask only: the address of an existing scheduler.

    Raises:
        InputError: an unknown executor or conflicting options.
    """
    if kind == "local":
        if scheduler is not None:
            raise InputError("--scheduler is for --executor dask")
        return LocalExecutor(workers or 1)
    if kind == "dask":
        if scheduler is not None and workers is not None:
            raise InputError("give --scheduler (an existing cluster) or --workers (a local one), not both")
        return DaskExecutor(scheduler, workers)
    raise InputError(f"--executor {kind!r}: expected local or dask")
