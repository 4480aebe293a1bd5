"""The ``alignkit`` command line: a thin click group over the Python API.

Sub-commands live in :mod:`alignkit.commands` and are imported only when they
are invoked (or listed by ``--help``), so ``alignkit --version`` stays fast.
Every user mistake surfaces as an :class:`~alignkit.errors.AlignkitError`,
printed as one line on stderr with exit status 2; anything else is a bug,
reported in one line with exit status 1 (``ALIGNKIT_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys
import traceback
import warnings
from typing import Any

import click

from alignkit._version import __version__
from alignkit.errors import AlignkitError

#: command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "store": "alignkit.commands.store:store",
    "score": "alignkit.commands.score:score",
    "compare": "alignkit.commands.compare:compare",
    "extract": "alignkit.commands.extract:extract",
    "probe": "alignkit.commands.probe:probe",
    "data": "alignkit.commands.data:data",
    "demo": "alignkit.commands.demo:demo",
    "report": "alignkit.commands.report:report",
    "sweep": "alignkit.commands.sweep:sweep",
    "models": "alignkit.commands.models:models",
}


def _debug() -> bool:
    return os.environ.get("ALIGNKIT_DEBUG", "") not in ("", "0")


#: errnos of an OSError that the environment causes (a full disk, a read-only or
#: unwritable folder, a missing path): reported as a user error, exit 2.
_ENV_ERRNOS = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
}

#: Python argument names that library messages use, as the command line spells them.
_CLI_WORDS = (
    (re.compile(r"overwrite=True \(--overwrite\)"), "--overwrite"),
    (re.compile(r"\bpass resume=True to continue it\b"), "rerun the extraction to resume it"),
    (re.compile(r" or pass allow_incomplete=True to read the rows written"), ""),
)


def one_line(message: str, argv: list[str] | None = None) -> str:
    """An error message as one line, in the command line's words.

    Libraries (torch's unpickler, numpy, zarr) write messages over several
    lines; only the first non-blank line is kept, brackets it leaves open are
    closed, and "..." marks the cut. Python argument names (``overwrite=True``,
    ``key=``) become the options of the command that ran (``--overwrite``,
    ``--rdm-key``) when ``argv`` shows which command that was.
    """
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    if not lines:
        return "(no message)"
    text = lines[0]
    if len(lines) > 1:
        text = text.rstrip(":") + " ..."
        depth = text.count("(") - text.count(")")
        text += ")" * max(depth, 0)
    return _cli_words(text, argv)


def _cli_words(text: str, argv: list[str] | None) -> str:
    for pattern, repl in _CLI_WORDS:
        text = pattern.sub(repl, text)
    options = _command_options(argv) if argv is not None else {}
    if not options:
        return text

    def option_for(name: str) -> str | None:
        if name in options:
            return options[name]
        ends = [opt for dest, opt in options.items() if dest.endswith("_" + name)]
        return ends[0] if len(ends) == 1 else None

    def flag(m: re.Match[str]) -> str:
        opt = option_for(m.group(1))
        return opt if opt is not None else m.group(0)

    def value(m: re.Match[str]) -> str:
        opt = option_for(m.group(1))
        if opt is None:
            return m.group(0)
        rest = m.string[m.end():m.end() + 1]
        return opt + (" " if rest.isalnum() or rest in ("'", '"') else "")

    text = re.sub(r"\b([a-z][a-z_]*)=True\b", flag, text)
    text = re.sub(r"\b([a-z][a-z_]*)=(?!True\b|False\b)", value, text)
    return re.sub(r"(--[a-z-]+) \(\1\)", r"\1", text)


def _command_options(argv: list[str]) -> dict[str, str]:
    """``{python name: --option}`` of the sub-command that ``argv`` invokes."""
    try:
        cmd: Any = cli
        ctx = click.Context(cli)
        for tok in argv:
            if not isinstance(cmd, click.Group):
                break
            sub = cmd.get_command(ctx, tok)
            if sub is None:
                default = getattr(cmd, "default_command", None)
                sub = cmd.get_command(ctx, default) if default and not tok.startswith("-") else None
                if sub is None:
                    break
            cmd = sub
        return {p.name: max(p.opts, key=len) for p in cmd.params
                if isinstance(p, click.Option) and p.name}
    except Exception:  # naming options is a courtesy; never hide the error itself
        return {}


def _os_error_line(exc: OSError) -> str | None:
    """One line for an OSError the environment caused, or None for a bug."""
    what = _ENV_ERRNOS.get(exc.errno or -1)
    if what is None:
        return None
    where = exc.filename if exc.filename is not None else None
    prefix = f"{where}: " if where else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{prefix}{what}; free some space and rerun the same command "
                "(an interrupted extraction resumes where it stopped)")
    return f"{prefix}{what}"


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Library warnings on stderr as one line each, without the source line."""
    click.echo(f"alignkit: warning: {one_line(str(message))}", err=True)


def run_guarded(func: Any, *args: Any, **kwargs: Any) -> int:
    """Run ``func`` and turn exceptions into alignkit's exit statuses.

    Returns the exit status: 0 on success, 2 for an :class:`AlignkitError`, a
    click usage error or an OSError the environment caused (a full disk, a
    read-only folder), 1 for any other exception, 130 on Ctrl-C. Every message
    is one line (see :func:`one_line`).
    """
    argv = kwargs.get("args")
    argv = list(argv) if argv is not None else sys.argv[1:]
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
        return 2 if exc.exit_code == 1 else exc.exit_code
    except AlignkitError as exc:
        if _debug():
            traceback.print_exc()
        click.echo(f"alignkit: error: {one_line(str(exc), argv)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("alignkit: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, a traceback on request
        if _debug():
            traceback.print_exc()
        if isinstance(exc, OSError):
            line = _os_error_line(exc)
            if line is not None:
                click.echo(f"alignkit: error: {line}", err=True)
                return 2
        click.echo(
            f"alignkit: internal error: {type(exc).__name__}: {one_line(str(exc))} "
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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
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
