"""Sweeps: many models x layers x datasets from one study file, resumable, on Dask if wanted.

::

    from alignkit.sweep import load_study, run_sweep
    report = run_sweep(load_study("study.toml"), executor="dask", workers=4)
    report.complete, len(report.ran), report.failed

The study (:mod:`alignkit.sweep.study`) expands into tasks
(:mod:`alignkit.sweep.tasks`): one extraction per (model, image set), then one
odd-one-out, RSA or probe task per layer and dataset. Tasks whose content-aware
key has a marker in the ledger are skipped; the others run on an executor
(:mod:`alignkit.sweep.executors`). The driver appends every record to the
results table as soon as its task finishes, then marks the task done, so a
sweep killed at any moment loses at most the tasks that were running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alignkit.sweep.study import Study, load_study, parse_study
from alignkit.sweep.tasks import Ledger, Task, TaskOutcome, expand

__all__ = [
    "Study",
    "Task",
    "TaskOutcome",
    "SweepReport",
    "load_study",
    "parse_study",
    "plan",
    "run_sweep",
    "results_table",
]


@dataclass
class SweepReport:
    """What a sweep did.

    Attributes:
        tasks: every task of the study.
        skipped: tasks already done before this run (same key).
        ran: tasks that ran and succeeded in this run.
        failed: ``(task, outcome)`` for tasks that failed, with their error.
        blocked: ``(task, name of the failed task it needs)``.
        executor: a description of where the tasks ran.
    """

    tasks: list[Task]
    skipped: list[Task] = field(default_factory=list)
    ran: list[Task] = field(default_factory=list)
    failed: list[tuple[Task, TaskOutcome]] = field(default_factory=list)
    blocked: list[tuple[Task, str]] = field(default_factory=list)
    executor: str = ""

    @property
    def complete(self) -> bool:
        """Whether every task of the study is done."""
        return not self.failed and not self.blocked and len(self.skipped) + len(self.ran) == len(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "complete": self.complete,
            "executor": self.executor,
            "tasks": len(self.tasks),
            "skipped": len(self.skipped),
            "ran": [t.name for t in self.ran],
            "failed": [{"task": t.name, "error_type": o.error_type, "error": o.error}
                       for t, o in self.failed],
            "blocked": [{"task": t.name, "needs": dep} for t, dep in self.blocked],
        }


def results_table(study: Study) -> Any:
    """The study's results table (``[sweep] results`` or the store's own)."""
    from alignkit.results import ResultsTable

    if study.sweep.results is not None:
        return ResultsTable(study.sweep.results)
    return ResultsTable.for_store(study.sweep.store,
                                  fallback_dir=os.path.dirname(os.path.abspath(study.path)))


def _extraction_present(task: Task) -> bool:
    """Whether every layer of an extraction is complete in the store (markers can outlive data)."""
    from alignkit.errors import AlignkitError
    from alignkit.store import EmbeddingStore

    try:
        st = EmbeddingStore(task.spec["store"], "r")
        entries = [e for m, ln in st.entries() if m == task.spec["entry_model"]
                   for e in [st.entry(m, ln)]]
    except AlignkitError:
        return False
    if not all(e.complete for e in entries):
        return False
    have = {e.layer for e in entries} | {str(e.attrs.get("requested_layer")) for e in entries}
    return all(layer in have for layer in task.spec["layers"])


def plan(study: Study) -> tuple[list[Task], set[str]]:
    """The study's tasks and the keys of those already done.

    An extraction counts as done only while its entries are still complete in
    the store; a task whose extraction must rerun is rerun too.
    """
    tasks = expand(study)
    done = Ledger(study.sweep.store).done() & {t.key for t in tasks}
    for t in tasks:
        if t.kind == "extract" and t.key in done and not _extraction_present(t):
            done.discard(t.key)
    for t in tasks:
        if any(d not in done for d in t.deps):
            done.discard(t.key)
    return tasks, done


def run_sweep(
    study: Study | str | os.PathLike[str],
    *,
    executor: str | Any = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
    on_event: Callable[[str, Task, TaskOutcome | None], None] | None = None,
) -> SweepReport:
    """Run every task of a study that is not done yet.

    Args:
        study: a :class:`Study` or a study file.
        executor: ``local``, ``dask``, or an executor object (see
            :mod:`alignkit.sweep.executors`).
        workers: local: processes (1: this process); dask: workers of a local
            cluster started for this sweep.
        scheduler: dask: the address of an existing scheduler.
        progress: a progress bar over tasks on stderr (default: when stderr is a terminal).
        on_event: called with ``("done" | "failed" | "blocked", task, outcome)``.

    Returns:
        A :class:`SweepReport`; failures do not raise.

    Raises:
        InputError: a bad study or executor option (before any task runs).
    """
    from alignkit.sweep.executors import make_executor

    if not isinstance(study, Study):
        study = load_study(study)
    tasks, done = plan(study)
    report = SweepReport(tasks, skipped=[t for t in tasks if t.key in done])
    todo = [t for t in tasks if t.key not in done]
    if not todo:
        return report
    from alignkit.store import EmbeddingStore

    EmbeddingStore(study.sweep.store, "a")  # create the root once, before workers write into it
    table, ledger = results_table(study), Ledger(study.sweep.store)
    ex = make_executor(executor, workers=workers, scheduler=scheduler) if isinstance(executor, str) else executor
    report.executor = ex.description
    _Driver(tasks, todo, done, report, ex, table, ledger, progress, on_event).run()
    return report


class _Driver:
    """Submits each task once the tasks it needs are done, records what finishes, and
    marks as blocked the tasks whose dependencies failed."""

    def __init__(self, tasks: list[Task], todo: list[Task], done: set[str],
                 report: SweepReport, ex: Any, table: Any, ledger: Ledger, progress: bool | None,
                 on_event: Callable[[str, Task, TaskOutcome | None], None] | None) -> None:
        from tqdm.auto import tqdm

        self.table, self.ledger = table, ledger
        self.ex, self.report, self.done, self.on_event = ex, report, done, on_event
        self.by_key = {t.key: t for t in tasks}
        self.waiting = {t.key: t for t in todo}
        self.failed: dict[str, str] = {}
        self.pending: dict[Any, Task] = {}
        disable = (not sys.stderr.isatty()) if progress is None else not progress
        self.bar = tqdm(total=len(todo), unit="task", desc="sweep", disable=disable,
                        file=sys.stderr, dynamic_ncols=True)

    def _event(self, what: str, task: Task, outcome: TaskOutcome | None) -> None:
        self.bar.update(1)
        if self.on_event is not None:
            self.on_event(what, task, outcome)

    def release(self) -> None:
        """Submit the waiting tasks whose dependencies are done; block those that failed."""
        for key in list(self.waiting):
            t = self.waiting[key]
            bad = next((d for d in t.deps if d in self.failed), None)
            if bad is not None:
                del self.waiting[key]
                self.failed[key] = self.by_key[bad].name
                self.report.blocked.append((t, self.by_key[bad].name))
                self._event("blocked", t, None)
            elif all(d in self.done for d in t.deps):
                del self.waiting[key]
                self.pending[self.ex.submit(t)] = t

    def finish(self, t: Task, outcome: TaskOutcome) -> None:
        """Append a finished task's records, then mark it done (or note its failure)."""
        outcome.key = t.key
        if outcome.ok:
            for rec in outcome.records:
                self.table.append(rec)
            self.ledger.mark(t, outcome)
            self.done.add(t.key)
            self.report.ran.append(t)
        else:
            self.failed[t.key] = outcome.error or "failed"
            self.report.failed.append((t, outcome))
        self._event("done" if outcome.ok else "failed", t, outcome)

    def run(self) -> None:
        try:
            self.release()
            while self.pending:
                for handle, outcome in self.ex.wait(list(self.pending)):
                    self.finish(self.pending.pop(handle), outcome)
                self.release()
        finally:
            self.bar.close()
            self.ex.close()
