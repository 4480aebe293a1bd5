"""The ``alignkit`` command line: a thin click group over the Python API.

Sub-commands live in :mod:`alignkit.commands` and are imported only when they
are invoked (or listed by ``--help``), so ``alignkit --version`` stays fast.
Every user mistake surfaces as an :class:`~alignkit.errors.AlignkitError`,
printed as one line on stderr with exit status 2; anything else is a bug,
reported in one line with exit status 1 (``ALIGNKIT_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from alignkit._version import __version__
from alignkit.errors import AlignkitError

#: command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "store": "alignkit.commands.store:store",
    "score": "alignkit.commands.score:score",
    "extract": "alignkit.commands.extract:extract",
    "probe": "alignkit.commands.probe:probe",
    "data": "alignkit.commands.data:data",
    "demo": "alignkit.commands.demo:demo",
    "report": "alignkit.commands.report:report",
    "sweep": "alignkit.commands.sweep:sweep",
}


def _debug() -> bool:
    return os.environ.get("ALIGNKIT_DEBUG", "") not in ("", "0")


def run_guarded(func: Any, *args: Any, **kwargs: Any) -> int:
    """Run ``func`` and turn exceptions into alignkit's exit statuses.

    Returns the exit status: 0 on success, 2 for an :class:`AlignkitError` or a
    click usage error, 1 for any other exception, 130 on Ctrl-C.
    """
    try:
        rv = func(*args, **kwargs)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("alignkit: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AlignkitError as exc:
        if _debug():
            traceback.print_exc()
        click.echo(f"alignkit: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("alignkit: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, a traceback on request
        if _debug():
            traceback.print_exc()
        click.echo(
            f"alignkit: internal error: {type(exc).__name__}: {exc} "
            "(set ALIGNKIT_DEBUG=1 for a traceback)",
            err=True,
        )
        return 1


class AlignkitGroup(click.Group):
    """A click group that loads sub-commands lazily and maps errors to exits."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        extra.pop("standalone_mode", None)
        code = run_guarded(
            super().main, args=args, prog_name=prog_name or "alignkit",
            standalone_mode=False, **extra,
        )
        sys.exit(code)


@click.group(cls=AlignkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="alignkit")
def cli() -> None:
    """Measure and improve the alignment of neural network representations
    with human similarity judgments.

    \b
    Examples:
      alignkit demo                               # the whole idea on bundled data
      alignkit store import emb.npy --ids things --store s.zarr --model spose --layer 49d
      alignkit store info s.zarr
      alignkit score ooo s.zarr --triplets things-test20k
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="alignkit")


if __name__ == "__main__":  # pragma: no cover
    main()
