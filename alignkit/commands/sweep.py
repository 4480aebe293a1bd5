"""``alignkit sweep``: run a study (models x layers x datasets) locally or on Dask."""

from __future__ import annotations

import sys
from typing import Any

import click

from alignkit.commands._output import emit

#: Exit status of a sweep that finished some tasks but not all (failed or blocked ones).
EXIT_INCOMPLETE = 3


def _check_trust(study: Any, trust_code: bool, what: str) -> None:
    """Refuse to look at a study naming code-running models unless --trust-code."""
    from alignkit.errors import InputError
    from alignkit.extract.specs import runs_code

    if trust_code:
        return
    for i, m in enumerate(study.models):
        kind = runs_code(m.name)
        if kind is not None:
            at = f" line {m.line}" if m.line else ""
            raise InputError(
                f"{study.path}{at}: [[model]] #{i + 1} {m.name!r} is {kind}, code that this study "
                f"imports and runs; pass --trust-code to allow {what} on it (see docs/security.md)"
            )


@click.command("sweep")
@click.argument("study_file", metavar="STUDY.toml", type=click.Path(dir_okay=False), required=False)
@click.option("--preset", "preset", default=None, metavar="TABLE",
              help="Sweep every public model of a model table (alignkit models ls --preset "
                   "TABLE) instead of a study file; needs --images.")
@click.option("--images", "images", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --preset: the THINGS image folder (one image per concept).")
@click.option("--store", "store", type=click.Path(), default=None,
              help="With --preset: the embedding store (default: TABLE.zarr).")
@click.option("--triplets", "triplets", default="things-test20k", show_default=True,
              help="With --preset: the triplet set scored (a bundled name or a file; the "
                   "paper's figures use the full THINGS set).")
@click.option("--dry-run", is_flag=True, help="List the tasks and whether each is done; run nothing.")
@click.option("--list-layers", is_flag=True,
              help="List the layers of every model of the study (builds each model); run nothing.")
@click.option("--trust-code", is_flag=True,
              help="Allow --dry-run and --list-layers on a study naming a factory or TorchScript "
                   "model (code that a sweep imports and runs); with --preset, include the "
                   "torch hub models (code from their repositories).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: this process (or --workers processes); dask: a Dask cluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="local: worker processes (default 1, this process); dask: workers of a "
                   "local cluster started for this sweep (default 2).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="dask: address of an existing scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format on stdout.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar over tasks on stderr (default: when stderr is a terminal).")
def sweep(study_file: str | None, preset: str | None, images: str | None, store: str | None,
          triplets: str, dry_run: bool, list_layers: bool, trust_code: bool, executor: str,
          workers: int | None, scheduler: str | None, fmt: str, progress: bool | None) -> int:
    """Run every task of a study that is not done yet.

    A study file lists models, image sets, triplet sets, RDMs and probe
    settings (see docs/sweep.md). Tasks whose inputs are unchanged since they
    last succeeded are skipped; failed tasks are reported with their error and
    rerun next time. Exit status: 0 when every task is done, 3 when some failed
    (or could not run because a task they need failed), 2 on a bad study file.

    A study naming a Python factory (file.py:factory, pkg.mod:factory) or a
    TorchScript file makes the sweep import and run that code in every task
    process: run only studies you trust (docs/security.md). --dry-run and
    --list-layers refuse such studies unless --trust-code.

    --preset TABLE writes a study of every public model of a model table
    (the paper's list: paper2023) next to the store and runs it; models from
    torch hub repositories run code from those repositories and are left out
    unless --trust-code.

    \b
    Examples:
      alignkit sweep study.toml --dry-run
      alignkit sweep study.toml --list-layers --trust-code
      alignkit sweep study.toml
      alignkit sweep study.toml --executor dask --workers 4
      alignkit sweep study.toml --executor dask --scheduler tcp://10.0.0.5:8786
      alignkit sweep --preset paper2023 --images THINGS/images --dry-run
    """
    from alignkit.errors import InputError
    from alignkit.sweep import load_study, run_sweep

    if executor == "local" and scheduler is not None:
        raise InputError("--scheduler is for --executor dask")
    if scheduler is not None and workers is not None:
        raise InputError("give --scheduler (an existing cluster) or --workers (a local one), not both")
    study = load_study(_preset_study(preset, images, store, triplets, trust_code)
                       if study_file is None else _no_preset(study_file, preset, images, store))
    if dry_run and list_layers:
        raise InputError("give --dry-run or --list-layers, not both")
    if dry_run or list_layers:
        _check_trust(study, trust_code, "--list-layers" if list_layers else "--dry-run")
    if list_layers:
        return _list_layers(study, fmt)
    if dry_run:
        return _dry_run(study, fmt)

    def log(event: str, task: Any, outcome: Any) -> None:
        if event == "failed":
            click.echo(f"alignkit: task failed: {task.name}: {outcome.error}", err=True)
        elif event == "blocked":
            click.echo(f"alignkit: task not run: {task.name}: a task it needs failed", err=True)

    report = run_sweep(study, executor=executor, workers=workers, scheduler=scheduler,
                       progress=progress, on_event=log)
    return _print_report(report, fmt)


def _no_preset(study_file: str, preset: str | None, images: str | None, store: str | None) -> str:
    from alignkit.errors import InputError

    if preset is not None:
        raise InputError("give STUDY.toml or --preset TABLE, not both")
    if images is not None or store is not None:
        raise InputError("--images and --store go with --preset (a study file names its own)")
    return study_file


def _preset_study(preset: str | None, images: str | None, store: str | None, triplets: str,
                  trust_code: bool) -> str:
    """Write the study of a model table beside its store; its path."""
    from pathlib import Path

    from alignkit.data import BUNDLED
    from alignkit.errors import InputError
    from alignkit.zoo import study_toml, table

    if preset is None:
        raise InputError("give a STUDY.toml file, or --preset TABLE with --images DIR")
    table(preset)  # an unknown table fails here, naming the known ones
    if images is None:
        raise InputError(f"--preset {preset}: give --images, the THINGS image folder")

    store_path = Path(store or f"{preset}.zarr").resolve()
    if not triplets.strip() or (Path(triplets).exists() and not Path(triplets).is_file()):
        raise InputError(f"--triplets {triplets!r}: expected a triplet file or a bundled "
                         "triplet set (see 'alignkit data ls')")
    if Path(triplets).is_file():  # a file: the study lives beside the store, not here
        triplets = str(Path(triplets).resolve())
    elif triplets not in BUNDLED:
        raise InputError(f"--triplets {triplets!r}: no such file, nor a bundled triplet set "
                         "(see 'alignkit data ls')")
    text, left_out = study_toml(preset, images=str(Path(images).resolve()), store=str(store_path),
                                triplets=triplets, include_code=trust_code)
    path = store_path.parent / f"{store_path.stem}.study.toml"
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the study file already there ({exc})") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if old != text:
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--store {store or store_path}: cannot write the study file "
                         f"{path} beside it ({exc.strerror or exc})") from None
    n = text.count("[[model]]")
    did = ("wrote" if old is None else "kept the same study at" if old == text
           else "replaced the different study file at")
    msg = f"alignkit: {did} {path} ({n} models of {preset})"
    if left_out:
        msg += (f"; left out {len(left_out)} torch hub models ({', '.join(c.name for c in left_out)}): "
                "they run code from their repositories, pass --trust-code to include them")
    click.echo(msg, err=True)
    return str(path)


def _list_layers(study: Any, fmt: str) -> int:
    from alignkit.commands.extract import layer_rows

    rows = [{"model": m.label, **row}
            for m in study.models
            for row in layer_rows(m.name, m.weights, study.sweep.offline, study.sweep.pool_maps,
                                  study.sweep.pool_tokens, study.sweep.seed, True)]
    emit(rows, fmt)
    return 0


def _dry_run(study: Any, fmt: str) -> int:
    from alignkit.sweep import plan

    tasks, done = plan(study)
    rows = [{"status": "done" if t.key in done else "todo", "task": t.kind, "model": t.model,
             "layer": t.layer, "images": t.images, "dataset": t.dataset, "key": t.key[7:19]}
            for t in tasks]
    emit(rows, fmt)
    todo = sum(r["status"] == "todo" for r in rows)
    click.echo(f"{len(rows)} tasks: {todo} to run, {len(rows) - todo} done", err=True)
    return 0


def _print_report(report: Any, fmt: str) -> int:
    """The sweep's outcome on stdout and stderr; the exit status."""
    if fmt == "json":
        emit([], "json", payload=report.to_dict())
    else:
        rows: list[dict[str, Any]] = [{"status": "ran", "task": t.name, "error": None}
                                      for t in report.ran]
        rows += [{"status": "failed", "task": t.name, "error": f"{o.error_type}: {o.error}"}
                 for t, o in report.failed]
        rows += [{"status": "blocked", "task": t.name, "error": f"needs {dep}"}
                 for t, dep in report.blocked]
        if rows:
            emit(rows, "table")
    n_bad = len(report.failed) + len(report.blocked)
    click.echo(
        f"sweep: {len(report.tasks)} tasks: {len(report.skipped)} already done, "
        f"{len(report.ran)} ran, {len(report.failed)} failed, {len(report.blocked)} not run"
        + (f" ({report.executor})" if report.executor else ""),
        err=True,
    )
    if n_bad:
        click.echo("alignkit: sweep incomplete: rerun it to retry the failed tasks", err=True)
        sys.stderr.flush()
        return EXIT_INCOMPLETE
    return 0
