"""Option types shared by the commands: seeds, finite numbers and output files.

Each refuses a bad value with an :class:`~alignkit.errors.InputError` that
names the option (one line, exit status 2), before the command does any work.
"""

from __future__ import annotations

import math
import os
from typing import Any

import click

from alignkit.errors import InputError


def _option_name(param: click.Parameter | None, default: str) -> str:
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return param.human_readable_name if param is not None else default


class SeedType(click.ParamType):
    """An integer seed from 0 to 2**32 - 1 (as a study file's ``seed``)."""

    name = "seed"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from alignkit.extract.specs import check_seed

        return check_seed(value, _option_name(param, "--seed"))


SEED = SeedType()


class FiniteFloat(click.ParamType):
    """A finite number (no NaN or infinity), optionally required to be positive."""

    name = "float"

    def __init__(self, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        opt = _option_name(param, "value")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{opt} {value!r}: expected a number") from None
        if not math.isfinite(out):
            raise InputError(f"{opt} {value}: expected a finite number (not NaN or infinity)")
        if self.positive and out <= 0:
            raise InputError(f"{opt} {value}: expected a number greater than 0")
        return out


class OutputFile(click.ParamType):
    """A file to write: its folder must exist, and the path must not be a folder.

    Args:
        extensions: allowed endings (lower case, with the dot); empty for any.
    """

    name = "file"

    def __init__(self, extensions: tuple[str, ...] = ()) -> None:
        self.extensions = extensions

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = os.fspath(value)
        opt = _option_name(param, "output")
        check_output_file(path, opt, self.extensions)
        return path


def check_output_file(path: str, what: str, extensions: tuple[str, ...] = ()) -> None:
    """Refuse an output file whose folder is missing, or that is a folder.

    Args:
        path: the file to be written.
        what: how messages name it (an option such as ``--per-triplet``, or ``OUT``).
        extensions: allowed endings (lower case, with the dot); empty for any.

    Raises:
        InputError: naming ``what`` and ``path``.
    """
    if extensions and not path.lower().endswith(extensions):
        raise InputError(f"{what} {path}: use a file name ending in {', '.join(extensions)}")
    if os.path.isdir(path):
        raise InputError(f"{what} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise InputError(f"{what} {path}: the folder {os.path.dirname(path) or folder} does not "
                         "exist; create it first")
    if not os.path.isdir(folder):
        raise InputError(f"{what} {path}: {os.path.dirname(path)} is a file, not a folder")
