"""Shared helpers of the CLI commands: one-line errors and the rich console."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

#: exceptions that mean "the user's input is wrong": shown as one line, exit code 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    KeyError,
)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-input errors raised by the library into a one-line message and exit code 2.

    Programming errors (anything not in :data:`USER_ERRORS`) still show their traceback.
    """
    try:
        yield
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err_console.print(f"[bold red]error:[/] {message}", highlight=False)
        raise typer.Exit(code=2) from None


def parse_int_list(text: str, option: str) -> list[int]:
    """Parse ``"984,492,246"`` into ``[984, 492, 246]``; the error names the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} expects comma-separated integers, got {text!r}") from None
    if not values:
        raise typer.BadParameter(f"{option} expects at least one integer, got {text!r}")
    return values
