"""Hostile inputs to the model tables, ``sweep --preset``, the model sources, the published
probes and the report's model attributes: each is a user mistake that must exit 2 with one
line naming what is wrong, never a traceback or a silently wrong result."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from alignkit.cli import cli


def _one_line_error(res) -> str:  # noqa: ANN001
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.startswith("alignkit: error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture()
def things(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "things"
    images.mkdir()
    return images


def _preset(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["sweep", "--preset", "paper2023", *args, "--dry-run",
                                    "--format", "json"])


def test_sweep_preset_store_under_a_file_is_a_user_error(things: Path) -> None:
    (things.parent / "afile").write_text("x")
    line = _one_line_error(_preset("--images", str(things), "--store", "afile/s.zarr"))
    assert "--store" in line and "afile" in line


def test_sweep_preset_missing_triplets_file_names_the_option(things: Path) -> None:
    line = _one_line_error(_preset("--images", str(things), "--triplets", "missing.csv"))
    assert "--triplets 'missing.csv'" in line
    assert not (things.parent / "paper2023.study.toml").exists()


@pytest.mark.parametrize("name", ["im\nnl", "im\x01c", 'im"q', "im\\b", "imü"])
def test_sweep_preset_odd_characters_in_paths_round_trip(things: Path, name: str) -> None:
    from alignkit.sweep import load_study

    images = things.parent / name
    images.mkdir()
    res = _preset("--images", str(images), "--store", f"s{name}.zarr")
    assert res.exit_code == 0, res.output
    study = load_study(str(things.parent / f"s{name}.study.toml"))
    assert study.images[0].path == str(images)
    assert study.sweep.store == str(things.parent / f"s{name}.zarr")


def test_sweep_preset_says_when_it_replaces_a_different_study(things: Path) -> None:
    study = things.parent / "paper2023.study.toml"
    assert _preset("--images", str(things)).exit_code == 0
    first = study.read_text()
    assert "rewrites this file" in first
    again = _preset("--images", str(things))
    assert again.exit_code == 0 and "kept the same study" in again.stderr
    study.write_text(first.replace("batch_size = 32", "batch_size = 8"))
    edited = _preset("--images", str(things))
    assert edited.exit_code == 0 and "replaced the different study file" in edited.stderr
    assert study.read_text() == first
