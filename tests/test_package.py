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
