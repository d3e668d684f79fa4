"""A per-operator cache of the tables a backend builds from a geometry (ray tables,
rebinning taps, filter responses), keyed by what they depend on besides the geometry:
usually a name, the device and the dtype."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class Plan:
    """Thread-safe memo: ``get(key, build)`` runs ``build()`` once per ``key``.

    An :class:`~sinotriage.operators.Operator` owns one, so its tables are built on the
    first call for a device and dtype and reused afterwards; the function form
    (:func:`~sinotriage.operators.project` ...) uses a fresh one per call.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                return self._items[key]
        value = build()
        with self._lock:
            return self._items.setdefault(key, value)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
