"""The ``sinotriage`` command line.

The app lives here; each subcommand is a small module in this package with a
``register(app)`` function that adds its command(s). A command parses its
arguments, calls the library, and prints; it holds no logic of its own.
Modules are imported when the app is built, and they import the heavy library
modules (torch, zarr, ...) inside the command functions so that ``--help``
stays fast.
"""

from __future__ import annotations

import importlib

import typer

from sinotriage import __version__
from sinotriage.cli._common import (
    EXIT_INTERNAL_ERROR,
    debug_enabled,
    report_internal_error,
    set_debug,
)

# subcommand modules, in the order they are listed by --help
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "synth",
    "ingest",
    "preprocess",
    "triage",
    "show",
    "compare",
    "train",
)

app = typer.Typer(
    name="sinotriage",
    help="Head-CT triage from the raw sinogram up: operators, synthetic data, models, studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sinotriage {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of internal errors (or set SINOTRIAGE_DEBUG=1)."
    ),
) -> None:
    """Head-CT triage from the raw sinogram up."""
    set_debug(debug)


for _name in COMMAND_MODULES:
    importlib.import_module(f"sinotriage.cli.{_name}").register(app)


def main() -> None:
    """Entry point of the ``sinotriage`` console script and ``python -m sinotriage``.

    An exception that escapes a command (a bug) ends in a one-line notice and exit code 1, or,
    with ``--debug`` / ``SINOTRIAGE_DEBUG=1``, in its traceback.
    """
    try:
        app(prog_name="sinotriage")
    except Exception as exc:
        if debug_enabled():
            raise
        report_internal_error(exc)
        raise SystemExit(EXIT_INTERNAL_ERROR) from None
