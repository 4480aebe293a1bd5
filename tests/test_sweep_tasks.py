"""Expansion of studies into tasks, content-aware keys, and the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignkit.sweep import tasks as tasks_mod
from alignkit.sweep.study import parse_study
from alignkit.sweep.tasks import Ledger, TaskOutcome, expand

STUDY = """\
[sweep]
store = "features.zarr"
seed = 1

[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["features.12", "penultimate"]

[[model]]
name = "mobilenet_v3_small"
layers = ["penultimate"]

[[images]]
name = "a"
path = "imgs_a"

[[images]]
name = "b"
path = "imgs_b"

[[triplets]]
name = "t1"
source = "t1.txt"
ids = "ids.txt"

[[triplets]]
name = "t2"
source = "t2.txt"
images = ["b"]

[[rdm]]
name = "r"
source = "r.txt"

[probe]
triplets = ["t1"]
"""


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for sub in ("imgs_a", "imgs_b"):
        (tmp_path / sub).mkdir()
        for i in range(3):
            (tmp_path / sub / f"img{i}.png").write_bytes(f"{sub}-{i}".encode())
    for name in ("t1.txt", "t2.txt", "r.txt", "ids.txt"):
        (tmp_path / name).write_text(f"{name}\n")
    return tmp_path


def _keys(folder: Path, text: str = STUDY) -> dict[str, str]:
    study = parse_study(text, base=folder, check_models=False)
    return {t.name: t.key for t in expand(study)}


def test_expansion_covers_models_layers_sets(folder: Path) -> None:
    tasks = expand(parse_study(STUDY, base=folder, check_models=False))
    kinds = [t.kind for t in tasks]
    # extract: 2 models x 2 image sets; layers: 3 per image set
    # per layer: t1 (both sets), t2 (set b only), r (both), probe on t1 (both)
    n_layer_sets = 3 * 2
    assert kinds.count("extract") == 4
    assert kinds.count("ooo") == n_layer_sets + 3
    assert kinds.count("rsa") == n_layer_sets
    assert kinds.count("probe") == n_layer_sets
    assert kinds[:4] == ["extract"] * 4  # extractions first
    by_key = {t.key: t for t in tasks}
    for t in tasks[4:]:
        (dep,) = t.deps
        ex = by_key[dep]
        assert ex.kind == "extract" and ex.model == t.model and ex.images == t.images
        assert t.layer in ex.spec["layers"]
    assert not any(t.dataset == "t2" and t.images == "a" for t in tasks)
    # records name a dataset scored on several image sets "name@images"
    assert {t.spec["dataset"] for t in tasks if t.dataset == "t1"} == {"t1@a", "t1@b"}
    assert {t.spec["dataset"] for t in tasks if t.dataset == "t2"} == {"t2"}
    assert {t.spec["entry_model"] for t in tasks} == {
        "squeezenet1_0@a", "squeezenet1_0@b", "mobilenet_v3_small@a", "mobilenet_v3_small@b"}


def test_keys_are_stable(folder: Path) -> None:
    assert _keys(folder) == _keys(folder)
    assert len(set(_keys(folder).values())) == len(_keys(folder))


def test_changing_a_triplet_file_changes_only_its_tasks(folder: Path) -> None:
    before = _keys(folder)
    (folder / "t2.txt").write_text("changed\n")
    after = _keys(folder)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in before if name.endswith("~ t2")}
    assert changed


def test_changing_an_image_changes_that_set_only(folder: Path) -> None:
    before = _keys(folder)
    (folder / "imgs_a" / "img1.png").write_bytes(b"other pixels")
    after = _keys(folder)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in before if " @a" in name}


def test_seed_matters_only_for_random_init_weights_and_seeded_scores(folder: Path) -> None:
    before = _keys(folder)
    after = _keys(folder, STUDY.replace("seed = 1", "seed = 2"))
    assert before["extract squeezenet1_0 @a"] != after["extract squeezenet1_0 @a"]
    assert before["extract mobilenet_v3_small @a"] == after["extract mobilenet_v3_small @a"]
    # scores take the seed (bootstrap, permutations, probes)
    assert before["ooo mobilenet_v3_small/penultimate @a ~ t1"] != after["ooo mobilenet_v3_small/penultimate @a ~ t1"]


def test_layers_options_and_version_are_in_the_key(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _keys(folder)
    fewer = _keys(folder, STUDY.replace('["features.12", "penultimate"]', '["penultimate"]'))
    assert fewer["extract squeezenet1_0 @a"] != before["extract squeezenet1_0 @a"]
    dot = _keys(folder, STUDY.replace('name = "t1"\n', 'name = "t1"\nsimilarity = "dot"\n'))
    assert dot["ooo squeezenet1_0/penultimate @a ~ t1"] != before["ooo squeezenet1_0/penultimate @a ~ t1"]
    assert dot["rsa squeezenet1_0/penultimate @a ~ r"] == before["rsa squeezenet1_0/penultimate @a ~ r"]
    monkeypatch.setattr(tasks_mod, "__version__", "999.0")
    assert not set(_keys(folder).values()) & set(before.values())


@pytest.mark.parametrize("remote", [False, True])
def test_ledger_marks_and_forgets(tmp_path: Path, remote: bool) -> None:
    store = f"memory://ledger-test-{tmp_path.name}/s.zarr" if remote else str(tmp_path / "s.zarr")
    (tmp_path / "imgs_a").mkdir()
    (tmp_path / "imgs_b").mkdir()
    for name in ("t1.txt", "t2.txt", "r.txt", "ids.txt"):
        (tmp_path / name).write_text("x\n")
    text = STUDY.replace('"features.zarr"', f'"{store}"')
    tasks = expand(parse_study(text, base=tmp_path, check_models=False))
    ledger = Ledger(tasks[0].spec["store"])
    assert ledger.done() == set()
    for t in tasks[:3]:
        ledger.mark(t, TaskOutcome(t.key, True))
    assert ledger.done() == {t.key for t in tasks[:3]}
    ledger.forget(tasks[1].key)
    assert ledger.done() == {tasks[0].key, tasks[2].key}
    if not remote:
        assert (tmp_path / "s.zarr.sweep").is_dir() and not (tmp_path / "s.zarr").exists()


@pytest.mark.slow  # the CLI checks model names with torchvision
def test_cli_dry_run_lists_tasks_and_creates_nothing(folder: Path) -> None:
    import json
    import subprocess
    import sys

    (folder / "study.toml").write_text(STUDY)
    code = ("import alignkit.cli as c; c.COMMANDS.setdefault('sweep', 'alignkit.commands.sweep:sweep'); "
            "c.main()")
    proc = subprocess.run([sys.executable, "-c", code, "sweep", str(folder / "study.toml"), "--dry-run",
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    expected = expand(parse_study(STUDY, base=folder, check_models=False))
    assert [(r["task"], r["model"], r["layer"], r["images"], r["dataset"]) for r in rows] == [
        (t.kind, t.model, t.layer, t.images, t.dataset) for t in expected]
    assert {r["status"] for r in rows} == {"todo"}
    assert f"{len(expected)} tasks: {len(expected)} to run, 0 done" in proc.stderr
    assert not (folder / "features.zarr").exists() and not (folder / "features.zarr.sweep").exists()


_FACTORY = """
from pathlib import Path

Path(__file__).with_name("imported").write_text("x")  # proof that the file ran


def build():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""


def _factory_study(folder: Path) -> Path:
    (folder / "nets.py").write_text(_FACTORY)
    text = STUDY.replace('name = "mobilenet_v3_small"\nlayers = ["penultimate"]',
                         f'name = "{folder / "nets.py"}:build"\nlabel = "nets"\nlayers = ["3"]')
    path = folder / "study.toml"
    path.write_text(text)
    return path


def _sweep_cli(args: list[str]):
    from click.testing import CliRunner

    from alignkit.cli import cli

    return CliRunner().invoke(cli, ["sweep", *args])


def test_seed_is_in_the_key_of_factory_models(folder: Path) -> None:
    study = _factory_study(folder).read_text()
    before = _keys(folder, study)
    after = _keys(folder, study.replace("seed = 1", "seed = 2"))
    assert before["extract nets @a"] != after["extract nets @a"]


@pytest.mark.parametrize("option", ["--dry-run", "--list-layers"])
def test_looking_at_a_study_with_code_needs_trust_code(folder: Path, option: str) -> None:
    path = _factory_study(folder)
    res = _sweep_cli([str(path), option])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    line = path.read_text().splitlines().index("[[model]]", 5) + 1  # the second [[model]]
    assert lines[0].startswith(f"alignkit: error: {path} line {line}: [[model]] #2 ")
    assert "a Python factory" in lines[0] and "--trust-code" in lines[0] and option in lines[0]
    assert not (folder / "imported").exists()  # the factory file never ran
    assert not (folder / "features.zarr").exists()


def test_dry_run_with_trust_code_still_runs_no_model_code(folder: Path) -> None:
    path = _factory_study(folder)
    res = _sweep_cli([str(path), "--dry-run", "--trust-code", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "extract" in res.stdout and not (folder / "imported").exists()


def test_list_layers_with_trust_code_builds_each_model(folder: Path) -> None:
    import json

    pytest.importorskip("torch")
    path = _factory_study(folder)
    res = _sweep_cli([str(path), "--list-layers", "--trust-code", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert (folder / "imported").exists()
    assert [r["layer"] for r in rows if r["model"] == "nets"] == ["0", "1", "2", "3", "output"]
    assert any(r["model"] == "squeezenet1_0" and r["layer"] == "features.12" for r in rows)


@pytest.mark.parametrize(("seed", "match"), [("-1", "must be at least 0, got -1"),
                                             ("4294967296", "must be at most 4294967295")])
def test_bad_study_seed_is_one_line_naming_the_key(folder: Path, seed: str, match: str) -> None:
    path = folder / "study.toml"
    path.write_text(STUDY.replace("seed = 1", f"seed = {seed}"))
    res = _sweep_cli([str(path), "--dry-run"])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"{path} line 3: [sweep] key 'seed': {match}" in lines[0]


def test_csv_images_outside_their_folder_need_the_study_key(folder: Path) -> None:
    from alignkit.errors import InputError
    from alignkit.sweep.tasks import images_checksum

    (folder / "lists").mkdir()
    (folder / "lists" / "set.csv").write_text("a,../imgs_a/img0.png\n")
    text = STUDY.replace('path = "imgs_b"', 'path = "lists/set.csv"')
    with pytest.raises(InputError, match="allow_outside_root"):
        parse_study(text.replace('path = "lists/set.csv"', 'path = "lists/set.csv"\n'
                                 'allow_outside_root = 1'), base=folder, check_models=False)
    study = parse_study(text.replace('path = "lists/set.csv"', 'path = "lists/set.csv"\n'
                                     'allow_outside_root = true'), base=folder, check_models=False)
    spec = study.images[1]
    assert spec.allow_outside_root
    before = images_checksum(spec)
    (folder / "imgs_a" / "img0.png").write_bytes(b"changed")  # outside the CSV's folder
    assert images_checksum(spec) != before
    ex = next(t for t in expand(study) if t.kind == "extract" and t.images == "b")
    assert ex.spec["allow_outside_root"] is True
