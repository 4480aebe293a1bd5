"""Running a check with more than one Numba thread, whatever the test process was started with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numba


def run_with_threads(check: Callable[[int], None]) -> None:
    """Run ``check(n_threads)`` with every thread Numba has (at least 2: asserted inside the
    check); where Numba was started with one thread, in a fresh interpreter with two."""
    if numba.config.NUMBA_NUM_THREADS >= 2:
        check(numba.config.NUMBA_NUM_THREADS)
        return
    module = check.__module__.rsplit(".", 1)[-1]
    code = f"import {module} as m; m.{check.__name__}(2)"
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
