"""Atomic file writes and JSON that survives NaN: the one home of both.

Every writer puts its bytes in a temporary file beside the target, flushes and fsyncs it, then
renames it into place with one :func:`os.replace`.  A reader therefore sees the old file or the
new one, never half of one, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_savefig",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "json_safe",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a binary temporary file beside ``path``, then rename it into place.

    Parameters
    ----------
    path
        The target file; its parent directories are created.
    write
        Called once with the open temporary file (binary mode).

    Returns
    -------
    Path
        ``path``.  On any exception the temporary file is removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that :func:`json.dump` accepts with ``allow_nan=False``.

    NaN and infinities become ``None`` (JSON ``null``); numpy scalars and arrays and
    one-element (or any) torch tensors become Python numbers and lists; tuples become lists;
    dictionary keys become strings.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "detach") and hasattr(value, "numel"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist()) if value.ndim else json_safe(value.item())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON atomically; NaN and infinities are written as ``null``."""
    text = json.dumps(json_safe(data), indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_savefig(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``fig.savefig`` atomically; the format comes from the suffix of ``path`` (png by default)."""
    fmt = kwargs.pop("format", None) or (Path(path).suffix.lstrip(".") or "png")
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, **kwargs))
