"""Study files: parsing, defaults, and refusal of bad files with line and key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from alignkit.errors import FormatError, InputError
from alignkit.sweep.study import load_study, parse_study

GOOD = """\
[sweep]
store = "out/features.zarr"
seed = 3
pool_maps = "avg"

[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["features.12", "penultimate"]

[[model]]
name = "mobilenet_v3_small"
label = "mnv3"
layers = ["penultimate"]

[[images]]
name = "sample"
path = "imgs"

[[triplets]]
name = "trip"
source = "trip.txt"
ids = "ids.txt"

[[triplets]]
name = "things"
source = "things-test20k"
images = ["sample"]
similarity = "dot"

[[rdm]]
name = "rdm"
source = "rdm.txt"
ids = "ids.txt"

[probe]
triplets = ["trip"]
lambdas = [0.1, 0.01]
"""


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    (tmp_path / "imgs").mkdir()
    for name in ("trip.txt", "ids.txt", "rdm.txt"):
        (tmp_path / name).write_text("0 1 2\n")
    return tmp_path


def _line_of(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = 0 if after is None else next(i for i, ln in enumerate(lines) if after in ln)
    return next(i for i, ln in enumerate(lines) if i >= start and needle in ln) + 1


def _refused(base: Path, text: str, match: str, check_models: bool = False) -> str:
    path = base / "study.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        load_study(path, check_models=check_models)
    msg = str(info.value)
    assert msg.startswith(str(path))
    return msg


def test_good_study_parses_with_defaults_and_resolved_paths(base: Path) -> None:
    (base / "study.toml").write_text(GOOD)
    st = load_study(base / "study.toml", check_models=False)
    assert st.sweep.store == str(base / "out" / "features.zarr")
    assert (st.sweep.seed, st.sweep.pool_maps, st.sweep.device, st.sweep.batch_size) == (3, "avg", "cpu", 32)
    assert [m.label for m in st.models] == ["squeezenet1_0", "mnv3"]
    assert st.models[0].layers == ("features.12", "penultimate")
    assert st.models[1].weights == "DEFAULT"
    assert st.images[0].path == str(base / "imgs")
    assert st.triplets[0].ids == str(base / "ids.txt")
    assert st.triplets[1].source == "things-test20k"  # bundled names stay names
    assert st.triplets[1].similarity == "dot" and st.triplets[1].images == ("sample",)
    assert st.probe is not None and st.probe.lambdas == (0.1, 0.01) and st.probe.folds == 3


def test_url_store_is_kept_as_is(base: Path) -> None:
    text = GOOD.replace('"out/features.zarr"', '"s3://bucket/study.zarr"')
    st = parse_study(text, base=base, check_models=False)
    assert st.sweep.store == "s3://bucket/study.zarr"


@pytest.mark.parametrize(
    ("old", "new", "needle", "match"),
    [
        ('seed = 3', 'seed = 3\ncolour = "red"', "colour", r"\[sweep\] key 'colour': unknown key"),
        ('label = "mnv3"', 'label = "mnv3"\nlayer = "x"', 'layer = "x"', r"\[\[model\]\] #2 key 'layer': unknown key"),
        ('seed = 3', 'seed = "3"', "seed =", r"key 'seed': expected an integer, got '3'"),
        ('seed = 3', 'seed = true', "seed =", r"key 'seed': expected an integer, got True"),
        ('layers = ["penultimate"]', 'layers = "penultimate"', 'layers = "penultimate"',
         r"#2 key 'layers': expected a non-empty list of strings"),
        ('layers = ["penultimate"]', 'layers = []', "layers = []", r"#2 key 'layers'"),
        ('source = "rdm.txt"', 'source = "nope.txt"', "nope.txt", r"\[\[rdm\]\] #1 key 'source': no such file"),
        ('path = "imgs"', 'path = "missing-folder"', "missing-folder", r"key 'path': no such file"),
        ('images = ["sample"]', 'images = ["other"]', '["other"]', r"no \[\[images\]\] named 'other'"),
        ('triplets = ["trip"]', 'triplets = ["nope"]', '["nope"]', r"no \[\[triplets\]\] named 'nope'"),
        ('similarity = "dot"', 'similarity = "manhattan"', "manhattan", r"'manhattan' is not one of"),
        ('lambdas = [0.1, 0.01]', 'lambdas = [0.1, -1]', "lambdas", r"key 'lambdas'"),
    ],
)
def test_bad_values_are_refused_with_line_and_key(
    base: Path, old: str, new: str, needle: str, match: str
) -> None:
    text = GOOD.replace(old, new)
    assert text != GOOD
    msg = _refused(base, text, match)
    assert f" line {_line_of(text, needle)}:" in msg


def test_duplicate_names_and_missing_keys(base: Path) -> None:
    text = GOOD + '\n[[images]]\nname = "sample"\npath = "imgs"\n'
    msg = _refused(base, text, r"\[\[images\]\] #2 key 'name': 'sample' is used twice")
    assert f"line {len(GOOD.splitlines()) + 3}:" in msg
    text = GOOD.replace('name = "trip"\nsource = "trip.txt"', 'name = "trip"')
    msg = _refused(base, text, r"\[\[triplets\]\] #1: missing required key 'source'")
    assert f"line {_line_of(text, '[[triplets]]')}:" in msg
    _refused(base, GOOD.replace("[sweep]", "[sweeps]"), r"unknown key or table 'sweeps'")
    _refused(base, GOOD.replace('store = "out/features.zarr"', ""), r"missing required key 'store'")


def test_not_toml_and_missing_file(base: Path) -> None:
    (base / "study.toml").write_text("[sweep\nstore = 1\n")
    with pytest.raises(FormatError, match=r"study.toml: not valid TOML .*line 1"):
        load_study(base / "study.toml", check_models=False)
    with pytest.raises(InputError, match="no such study file"):
        load_study(base / "absent.toml")


@pytest.mark.slow  # imports torchvision
def test_unknown_model_is_refused_with_suggestion(base: Path) -> None:
    text = GOOD.replace('name = "mobilenet_v3_small"', 'name = "mobilenet_v3_smal"')
    msg = _refused(base, text, r"#2 key 'name': unknown model 'mobilenet_v3_smal'", check_models=True)
    assert "mobilenet_v3_small" in msg  # the suggestion
    assert f" line {_line_of(text, 'mobilenet_v3_smal')}:" in msg
    # known names, custom factories and files pass
    assert len(parse_study(GOOD, base=base, check_models=True).models) == 2


def test_cli_refuses_bad_study_before_any_work(base: Path) -> None:
    text = GOOD.replace("seed = 3", "seed = 3.5")
    (base / "study.toml").write_text(text)
    code = ("import alignkit.cli as c; c.COMMANDS.setdefault('sweep', 'alignkit.commands.sweep:sweep'); "
            "c.main()")
    proc = subprocess.run([sys.executable, "-c", code, "sweep", str(base / "study.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"alignkit: error: .*study.toml line 3: \[sweep\] key 'seed': expected an integer",
                     proc.stderr)
    assert not (base / "out").exists()  # nothing was created


def test_file_url_store_is_a_local_path(base: Path) -> None:
    text = GOOD.replace('"out/features.zarr"', f'"file://{base}/x.zarr"')
    assert parse_study(text, base=base, check_models=False).sweep.store == str(base / "x.zarr")
