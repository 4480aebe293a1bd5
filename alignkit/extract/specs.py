"""What a model specification implies, decided without importing torch.

Two questions are answered here for the command line, the sweep and the
extraction runner:

* Does building the model run code that came with it? The model source that
  takes the spec says so (``runs_code`` in :mod:`alignkit.extract.sources`): a
  Python factory (``path/file.py:factory``, ``package.module:factory``) is
  imported and called; a TorchScript file carries compiled code that runs in
  every forward pass. Commands that only inspect (``alignkit extract
  --list-layers``, ``alignkit sweep --dry-run`` / ``--list-layers``) refuse
  such models without ``--trust-code``. See ``docs/security.md``.
* Does the seed decide the weights? (The source's ``seed_decides_weights``.)
  Random initialisation (``--weights none``) and factories are built right
  after seeding torch, Python and numpy with ``--seed``, so the same seed
  gives the same network in every process.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alignkit.errors import InputError
from alignkit.extract.sources import source_for
from alignkit.extract.sources.torchscript import SUFFIXES as TORCHSCRIPT_SUFFIXES

__all__ = [
    "SEED_MAX",
    "TORCHSCRIPT_SUFFIXES",
    "check_seed",
    "runs_code",
    "require_trust",
    "seed_applies",
    "seeded",
]

#: Largest accepted seed (the seeds numpy's legacy generator takes: 32 bits).
SEED_MAX = 2**32 - 1


def check_seed(value: Any, where: str = "--seed") -> int:
    """A seed as an int in ``[0, 2**32 - 1]``.

    Args:
        value: the seed (an int, or a string of one from the command line).
        where: how the message names it (``--seed``, ``study.toml line 4: [sweep] key 'seed'``).

    Raises:
        InputError: not an integer, negative or too large.
    """
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise InputError(f"{where} {value!r}: expected an integer from 0 to {SEED_MAX}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where} {value!r}: expected an integer from 0 to {SEED_MAX}")
    if not 0 <= value <= SEED_MAX:
        raise InputError(f"{where} {value}: expected an integer from 0 to {SEED_MAX}")
    return int(value)


def runs_code(spec: str) -> str | None:
    """What code building (or running) model ``spec`` executes, or None for none of its own.

    Returns a short description: ``"a Python factory (file.py)"``, ``"a Python
    factory (module mypkg.nets)"`` or ``"a TorchScript file"``. Torchvision names
    and ``timm:``/``open_clip:`` names run only the installed libraries' code.
    Decided by the spec's model source without importing or running anything.
    """
    source = source_for(spec)
    return source.code_kind(spec.strip()) if source.runs_code else None


def require_trust(spec: str, trust_code: bool, what: str) -> None:
    """Refuse to build a model that runs its own code unless ``--trust-code`` was given.

    Args:
        spec: the model specification.
        trust_code: whether ``--trust-code`` was given.
        what: the command, for the message (``"--list-layers"``, ``"--dry-run"``).

    Raises:
        InputError: ``spec`` runs code and ``trust_code`` is false.
    """
    kind = runs_code(spec)
    if kind is not None and not trust_code:
        raise InputError(
            f"model {spec!r} is {kind}: {what} would import and run its code; pass "
            "--trust-code if you trust it (see docs/security.md)"
        )


def seed_applies(spec: str, weights: str) -> bool:
    """Whether ``--seed`` decides the model's weights (random init or a factory)."""
    return source_for(spec).seed_decides_weights(spec.strip(), weights)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU), Python's ``random`` and numpy's global generator; restore them after.

    The model is built inside, so its initial weights depend on ``seed`` only;
    the caller's random streams are left as they were.
    """
    import numpy as np
    import torch

    seed = check_seed(seed)
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global generator is what factories use
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002
