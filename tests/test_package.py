"""Packaging promises: a light import, a version, exit statuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

import alignkit
from alignkit.cli import run_guarded
from alignkit.errors import AlignkitError, DataError, InputError


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_is_light():
    out = _python(
        "import sys, alignkit; "
        "print(sorted(m for m in ('torch', 'numba', 'zarr', 'scipy', 'torchvision') if m in sys.modules))"
    )
    assert out == "[]"


def test_score_never_imports_torch():
    out = _python(
        "import sys, numpy as np\n"
        "from alignkit.score import odd_one_out\n"
        "X = np.random.default_rng(0).normal(size=(10, 3))\n"
        "odd_one_out(X, np.array([[0, 1, 2], [3, 4, 5]]))\n"
        "print('torch' in sys.modules)"
    )
    assert out == "False"


def test_version_everywhere():
    from importlib.metadata import version

    assert alignkit.__version__ == version("alignkit")
    out = subprocess.run(["alignkit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and alignkit.__version__ in out.stdout


def test_help_lists_commands_without_heavy_imports():
    out = _python(
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from alignkit.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "print(r.exit_code, 'torch' in sys.modules, all(c in r.output for c in "
        "('store', 'score', 'extract', 'probe', 'data', 'demo')))"
    )
    assert out == "0 False True"


def test_exit_statuses():
    def bad_input():
        raise DataError("triplets.txt: row 3: index 1854 out of range")

    def bug():
        raise RuntimeError("boom")

    assert run_guarded(lambda: None) == 0
    assert run_guarded(bad_input) == 2
    assert run_guarded(bug) == 1


def test_unknown_command_is_a_usage_error():
    out = subprocess.run(["alignkit", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_one_hierarchy():
    assert issubclass(InputError, AlignkitError) and issubclass(InputError, ValueError)
    for name in alignkit.errors.__all__:
        assert issubclass(getattr(alignkit.errors, name), AlignkitError)


@pytest.mark.parametrize("name", ["store", "data", "score", "errors", "provenance"])
def test_lazy_submodules(name):
    assert getattr(alignkit, name).__name__ == f"alignkit.{name}"


_COMPILE = (
    "import numpy as np\n"
    "{pre}"
    "import alignkit\n"
    "from alignkit._kernels.bootstrap import pack_bits\n"
    "pack_bits(np.ones(70, dtype=np.uint8))\n"
    "import os, numba\n"
    "print(os.environ.get('NUMBA_CACHE_DIR'), numba.config.CACHE_DIR)\n"
)


def _compile_in_subprocess(tmp_path, env_extra, pre=""):
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), **env_extra)
    kernels = Path(alignkit.__file__).parent / "_kernels" / "__pycache__"
    before = {p.name for p in kernels.glob("*.nb*")} if kernels.is_dir() else set()
    out = subprocess.run([sys.executable, "-c", _COMPILE.format(pre=pre)], capture_output=True,
                         text=True, env=env, check=True)
    after = {p.name for p in kernels.glob("*.nb*")} if kernels.is_dir() else set()
    return out.stdout.split(), after - before


@pytest.mark.parametrize("numba_first", [False, True])
def test_numba_cache_defaults_to_the_user_cache_folder(tmp_path, numba_first):
    pre = "import numba\n" if numba_first else ""
    (env_dir, config_dir), new_in_package = _compile_in_subprocess(tmp_path, {}, pre)
    want = tmp_path / "xdg" / "alignkit" / "numba"
    assert env_dir == config_dir == str(want)
    assert sorted(p.name.split("-")[0] for p in want.rglob("*.nbi")) == ["bootstrap.pack_bits"]
    assert not new_in_package  # nothing written beside the installed package


def test_numba_cache_dir_set_by_the_user_is_kept(tmp_path):
    mine = tmp_path / "mine"
    (env_dir, config_dir), new_in_package = _compile_in_subprocess(
        tmp_path, {"NUMBA_CACHE_DIR": str(mine)})
    assert env_dir == config_dir == str(mine)
    assert list(mine.rglob("*.nbi")) and not (tmp_path / "xdg" / "alignkit").exists()
    assert not new_in_package


def test_user_cache_dir_follows_the_platform(monkeypatch, tmp_path):
    from pathlib import Path

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the spec allows absolute paths only
    assert alignkit.user_cache_dir() == tmp_path / ".cache" / "alignkit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert alignkit.user_cache_dir() == tmp_path / "c" / "alignkit"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert alignkit.user_cache_dir() == tmp_path / "Library" / "Caches" / "alignkit"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "L"))
    assert alignkit.user_cache_dir() == Path(tmp_path / "L" / "alignkit" / "Cache")
