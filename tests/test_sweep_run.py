"""Running sweeps: numbers against numpy/scipy, local vs Dask, kill and resume, failures.

Two tiny random-init torchvision models x two layers on the nine sample images,
scored on triplets and an RDM over those images that the tests write (ids = the
images' file stems, listed in a shuffled order so that matching by id matters).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from alignkit.results import ResultsTable
from alignkit.store import EmbeddingStore
from alignkit.sweep import load_study, run_sweep
from alignkit.sweep.tasks import Ledger

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
CLI = ("import alignkit.cli as c; c.COMMANDS.setdefault('sweep', 'alignkit.commands.sweep:sweep'); "
       "c.main()")

pytestmark = pytest.mark.skipif(not IMAGES.is_dir(), reason=f"sample images {IMAGES} not present")

MODELS = """\
[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["features.12", "penultimate"]

[[model]]
name = "mobilenet_v3_small"
weights = "none"
layers = ["features.12", "penultimate"]
"""


def _inputs(folder: Path) -> list[str]:
    """Write ids.txt (shuffled stems), trip.txt (all triples, random odd one) and rdm.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    stems = sorted(p.stem for p in IMAGES.iterdir() if p.is_file())
    rng = np.random.default_rng(7)
    ids = [stems[i] for i in rng.permutation(len(stems))]
    (folder / "ids.txt").write_text("\n".join(ids) + "\n")
    T = np.array([rng.permutation(c) for c in itertools.combinations(range(len(ids)), 3)])
    np.savetxt(folder / "trip.txt", T, fmt="%d")
    A = rng.random((len(ids), len(ids)))
    D = A + A.T
    np.fill_diagonal(D, 0.0)
    np.savetxt(folder / "rdm.txt", D)
    return ids


def _study(folder: Path, *, store: str = "features.zarr", models: str = MODELS,
           images: str | None = None, extra: str = "", data: Path | None = None) -> Path:
    prefix = f"{data}/" if data is not None else ""
    images = images or f'[[images]]\nname = "sample"\npath = "{IMAGES}"\n'
    text = f"""\
[sweep]
store = "{store}"
seed = 5
batch_size = 4
pool_maps = "avg"
threads = 1

{models}
{images}
[[triplets]]
name = "trip"
source = "{prefix}trip.txt"
ids = "{prefix}ids.txt"

[[rdm]]
name = "rdm"
source = "{prefix}rdm.txt"
ids = "{prefix}ids.txt"
{extra}"""
    path = folder / "study.toml"
    path.write_text(text)
    return path


def _results(path: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for rec in ResultsTable(path).records():
        key = (rec["kind"], rec["model"], rec["layer"], rec["dataset"], rec["images"])
        assert key not in out, key
        out[key] = rec
    return out


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("local")
    _inputs(folder)
    report = run_sweep(load_study(_study(folder)))
    return folder, report


def test_local_sweep_scores_match_numpy_and_scipy(local_run: tuple[Path, Any]) -> None:
    folder, report = local_run
    assert report.complete and len(report.ran) == 2 + 2 * 2 * 2 and not report.skipped
    ids = (folder / "ids.txt").read_text().split()
    T = np.loadtxt(folder / "trip.txt", dtype=np.int64)
    D = np.loadtxt(folder / "rdm.txt")
    st = EmbeddingStore(folder / "features.zarr")
    records = _results(folder / "features.zarr" / "results.jsonl")
    assert len(records) == 8
    for (kind, model, _layer, _dataset, images), rec in records.items():
        entry = st.entry(f"{model}@{images}", rec["module"])
        pos = {s: i for i, s in enumerate(entry.ids.astype(str))}
        X = entry.features().astype(np.float64)[[pos[s] for s in ids]]  # rows in the ids' order
        if kind == "ooo":
            U = X / np.linalg.norm(X, axis=1, keepdims=True)
            S = U @ U.T
            i, j, k = T.T
            pairs = np.stack([S[i, j], S[i, k], S[j, k]], axis=1)  # odd one out: k, j, i
            best = pairs.max(axis=1)
            correct = (pairs[:, 0] == best) & ((pairs == best[:, None]).sum(axis=1) == 1)
            assert rec["result"]["n_correct"] == int(correct.sum())
            assert rec["result"]["accuracy"] == pytest.approx(correct.mean(), abs=1e-15)
        else:
            M = 1.0 - np.corrcoef(X)
            iu = np.triu_indices(len(ids), 1)
            rho = spearmanr(M[iu], D[iu]).statistic
            assert rec["result"]["value"] == pytest.approx(rho, abs=1e-12)
    # presets resolve to the module they name; records keep the layer as written
    assert {r["layer"] for r in records.values()} == {"features.12", "penultimate"}
    assert {r["module"] for r in records.values()} >= {"features.12", "classifier.1", "classifier.0"}


def test_rerun_skips_every_task(local_run: tuple[Path, Any]) -> None:
    folder, first = local_run
    before = (folder / "features.zarr" / "results.jsonl").read_bytes()
    report = run_sweep(load_study(folder / "study.toml"))
    assert report.complete and not report.ran
    assert {t.key for t in report.skipped} == {t.key for t in first.tasks}
    assert (folder / "features.zarr" / "results.jsonl").read_bytes() == before


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_results(local_run: tuple[Path, Any], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    from alignkit.sweep.executors import DaskExecutor

    folder, _ = local_run
    study = load_study(_study(tmp_path, data=folder))  # the same inputs, another store
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        report = run_sweep(study, executor=DaskExecutor(client))
        assert report.executor.startswith("dask")
        workers_used = set(client.run(os.getpid).values())
    assert report.complete and len(report.ran) == 10 and len(workers_used) == 2
    local = _results(folder / "features.zarr" / "results.jsonl")
    remote = _results(tmp_path / "features.zarr" / "results.jsonl")
    assert local.keys() == remote.keys()
    for key in local:
        assert remote[key]["result"] == local[key]["result"], key
    a, b = EmbeddingStore(folder / "features.zarr"), EmbeddingStore(tmp_path / "features.zarr")
    assert a.entries() == b.entries()
    for m, ln in a.entries():
        assert a.entry(m, ln).checksum == b.entry(m, ln).checksum


@pytest.mark.slow
def test_killed_sweep_reruns_only_missing_tasks(tmp_path: Path) -> None:
    _inputs(tmp_path)
    study_path = _study(tmp_path)
    ledger = Ledger(str(tmp_path / "features.zarr"))
    proc = subprocess.Popen([sys.executable, "-c", CLI, "sweep", str(study_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not ledger.done() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    finished = ledger.done()
    report = run_sweep(load_study(study_path))
    all_keys = {t.key for t in report.tasks}
    assert 1 <= len(finished) < len(all_keys)
    assert {t.key for t in report.skipped} == finished
    assert {t.key for t in report.ran} == all_keys - finished
    assert len(report.ran) == len(all_keys) - len(finished) and report.complete
    records = ResultsTable(tmp_path / "features.zarr" / "results.jsonl").records()
    assert {r["sweep"]["key"] for r in records} == {t.key for t in report.tasks if t.kind != "extract"}


@pytest.mark.slow
def test_failed_task_does_not_stop_the_others(tmp_path: Path) -> None:
    _inputs(tmp_path)
    bad = tmp_path / "bad_images"
    shutil.copytree(IMAGES, bad)
    (bad / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    images = (f'[[images]]\nname = "good"\npath = "{IMAGES}"\n\n'
              f'[[images]]\nname = "bad"\npath = "{bad}"\n')
    models = '[[model]]\nname = "mobilenet_v3_small"\nweights = "none"\nlayers = ["penultimate"]\n'
    study_path = _study(tmp_path, models=models, images=images)
    proc = subprocess.run([sys.executable, "-c", CLI, "sweep", str(study_path), "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["complete"] and out["tasks"] == 6
    assert len(out["ran"]) == 3 and all("@good" in name for name in out["ran"])
    (failed,) = out["failed"]
    assert failed["task"] == "extract mobilenet_v3_small @bad"
    assert failed["error_type"] == "DataError" and "zz_corrupt.png" in failed["error"]
    assert sorted(b["task"] for b in out["blocked"]) == [
        "ooo mobilenet_v3_small/penultimate @bad ~ trip",
        "rsa mobilenet_v3_small/penultimate @bad ~ rdm",
    ]
    assert "task failed: extract mobilenet_v3_small @bad" in proc.stderr
    assert "sweep incomplete" in proc.stderr
    # fix the image set: the next run does the three missing tasks only
    (bad / "zz_corrupt.png").unlink()
    report = run_sweep(load_study(study_path))
    assert report.complete and len(report.skipped) == 3
    records = ResultsTable(tmp_path / "features.zarr" / "results.jsonl").records()
    assert sorted(r["dataset"] for r in records) == ["rdm@bad", "rdm@good", "trip@bad", "trip@good"]
    assert sorted(t.name for t in report.ran) == [
        "extract mobilenet_v3_small @bad",
        "ooo mobilenet_v3_small/penultimate @bad ~ trip",
        "rsa mobilenet_v3_small/penultimate @bad ~ rdm",
    ]


@pytest.mark.slow
def test_probe_task_saves_transform_and_records_cv(tmp_path: Path) -> None:
    import torch

    from alignkit.data import load_triplets
    from alignkit.probe import cross_validate

    ids = _inputs(tmp_path)
    models = '[[model]]\nname = "mobilenet_v3_small"\nweights = "none"\nlayers = ["penultimate"]\n'
    extra = '\n[probe]\ntriplets = ["trip"]\nfolds = 3\nlambdas = [0.01]\n'
    report = run_sweep(load_study(_study(tmp_path, models=models, extra=extra)))
    assert report.complete and [t.kind for t in report.ran] == ["extract", "ooo", "rsa", "probe"]
    (rec,) = ResultsTable(tmp_path / "features.zarr" / "results.jsonl").records("probe")
    entry = EmbeddingStore(tmp_path / "features.zarr").entry("mobilenet_v3_small@sample", rec["module"])
    assert "sweep-trip" in entry.probes()
    pos = {s: i for i, s in enumerate(entry.ids.astype(str))}
    X = entry.features()[[pos[s] for s in ids]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep ran it (threads = 1)
    try:
        direct = cross_validate(X, load_triplets(tmp_path / "trip.txt"), folds=3, lambdas=[0.01],
                                seed=5, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert rec["result"]["accuracy"] == direct.probing_accuracy
    # the same summary as 'alignkit probe fit' records: k folds, the chosen lambda, the sd
    assert rec["result"]["probe"] == "sweep-trip" and rec["result"]["k"] == 3
    assert rec["result"]["lambda"] == 0.01
    assert rec["result"]["accuracy_sd"] == direct.summary()["accuracy_sd"]
    assert rec["result"]["zero_shot_accuracy"] == direct.zero_shot_accuracy
