"""Shared helpers of the CLI commands: one-line errors and the rich console.

Errors
------
The project's own input errors (:class:`sinotriage.errors.InputError` and its subclasses) and the
operating system's errors about a path the user gave (:data:`USER_ERRORS`) are shown as one line,
``error: ...``, with exit code 2. Anything else is a bug: it is reported as one line saying that
it is an internal error and how to see the traceback (exit code 1); with ``sinotriage --debug``
or ``SINOTRIAGE_DEBUG=1`` the exception propagates with its traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.markup import escape

from sinotriage.errors import InputError

console = Console()
err_console = Console(stderr=True)

#: exceptions that mean "the user's input is wrong": shown as one line, exit code 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

#: exit code of a user error (bad option, file or value)
EXIT_USER_ERROR = 2
#: exit code of an internal error (a bug)
EXIT_INTERNAL_ERROR = 1

#: environment variable that turns on tracebacks, like the global ``--debug`` option
DEBUG_ENV = "SINOTRIAGE_DEBUG"

_state = {"debug": False}


def set_debug(on: bool) -> None:
    """Show tracebacks of internal errors (the global ``--debug`` option)."""
    _state["debug"] = bool(on)


def debug_enabled() -> bool:
    """Whether ``--debug`` was given or ``SINOTRIAGE_DEBUG`` is set to a true value."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return _state["debug"] or env not in ("", "0", "false", "no", "off")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def print_error(message: object) -> None:
    """Print ``error: message`` as one line on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(_one_line(str(message)))}", highlight=False,
                      soft_wrap=True)


def report_internal_error(exc: BaseException) -> None:
    """Print the one-line notice of an internal error (a bug) on stderr."""
    what = _one_line(f"{type(exc).__name__}: {exc}")
    if len(what) > 200:
        what = what[:197] + "..."
    err_console.print(
        f"[bold red]internal error[/] (a bug in sinotriage): {escape(what)}; rerun with "
        f"`sinotriage --debug ...` or {DEBUG_ENV}=1 to see the traceback",
        highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Run library calls with the CLI's error policy (see the module docstring).

    Exits with code 2 after one line for :data:`USER_ERRORS`; with code 1 after one line for
    any other exception, unless debugging is on (:func:`debug_enabled`), where it propagates.
    ``typer.Exit``, ``typer.BadParameter`` and the other click exceptions pass through.
    """
    try:
        yield
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except USER_ERRORS as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_USER_ERROR) from None
    except Exception as exc:
        if debug_enabled():
            raise
        report_internal_error(exc)
        raise typer.Exit(code=EXIT_INTERNAL_ERROR) from None


def check_device(device: str, option: str = "--device") -> str:
    """Refuse a torch device this machine does not have, before any work starts.

    ``cpu``, ``cuda`` and ``cuda:N`` are accepted when they exist here; anything else, or a CUDA
    device that is missing, raises :class:`~sinotriage.errors.InputError` naming the option.
    """
    text = str(device).strip()
    if text == "cpu":
        return text
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise InputError(f"{option} must be cpu, cuda or cuda:N, got {device!r}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise InputError(f"{option} {text}: CUDA is not available on this machine; use cpu")
    index = int(text[5:]) if ":" in text else 0
    if index >= count:
        raise InputError(f"{option} {text}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return text


def figure_path(out: Path, default_name: str, option: str = "--out") -> Path:
    """The file a figure option writes: ``out`` itself, ``out/default_name`` when ``out`` is a
    directory, ``out`` + ``.png`` without a suffix; a suffix matplotlib cannot write is an
    :class:`~sinotriage.errors.InputError` (checked before any work starts)."""
    from matplotlib.backend_bases import FigureCanvasBase

    out = Path(out)
    if out.is_dir():
        out = out / default_name
    elif not out.suffix:
        out = out.with_name(out.name + ".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in formats:
        raise InputError(f"{option} {out}: cannot write figures of type {out.suffix!r}; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return out


def parse_int_list(text: str, option: str) -> list[int]:
    """Parse ``"984,492,246"`` into ``[984, 492, 246]``; the error names the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} expects comma-separated integers, got {text!r}") from None
    if not values:
        raise typer.BadParameter(f"{option} expects at least one integer, got {text!r}")
    return values
