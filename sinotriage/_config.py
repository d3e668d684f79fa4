"""The one strict pydantic base of every configuration and the one formatter of its errors.

:class:`StrictModel` rejects unknown keys and is frozen; :func:`validate` turns a pydantic
``ValidationError`` into a one-line :class:`~sinotriage.errors.ConfigError` that names the source
(a file, an option) and every offending key.  :mod:`sinotriage.training.config` and
:mod:`sinotriage.experiments.config` both build on them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sinotriage.errors import ConfigError

__all__ = ["StrictModel", "format_validation_error", "validate"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A pydantic model that forbids unknown keys and cannot be changed after construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _one(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "<root>"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if err["type"] == "missing":
        return f"missing key {key!r}"
    msg = str(err["msg"]).replace("\n", " ")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if key == "<root>":
        return msg
    given = err.get("input")
    shown = "" if isinstance(given, dict | list | tuple) else f" (given {given!r})"
    return f"key {key!r}: {msg}{shown}"


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """One line: ``"<source>: unknown key 'a.b'; key 'c': <problem> (given ...)"``.

    Parameters
    ----------
    exc
        The pydantic error.
    source
        What was validated, e.g. ``"config file run.yaml"``; leads the line.
    """
    return f"{source}: " + "; ".join(_one(err) for err in exc.errors())


def validate(model: type[M], data: Any, source: str = "config") -> M:
    """``model.model_validate(data)``, raising :class:`ConfigError` with a one-line message.

    Raises
    ------
    ConfigError
        ``data`` is not a mapping, or a key fails validation; the message names ``source`` and
        the keys.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
