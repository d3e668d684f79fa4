"""The one home of each shared piece: atomic writes, NaN-safe JSON, vocabulary, progress."""

from __future__ import annotations

import json
import math
import os

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from sinotriage.errors import ConfigError, InputError, StoreError  # noqa: E402
from sinotriage.io.files import (  # noqa: E402
    atomic_savefig,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_safe,
)
from sinotriage.progress import progress_bar, report  # noqa: E402


def test_atomic_writers_write_and_leave_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a" / "c.txt", "héllo")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "c.txt").read_text(encoding="utf-8") == "héllo"
    assert sorted(os.listdir(tmp_path / "a")) == ["b.bin", "c.txt"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "x.txt", "old")

    def explode(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, explode)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_json_safe_turns_non_finite_numbers_into_null(tmp_path):
    data = {"nan": float("nan"), "inf": np.float32(np.inf), 3: (np.int64(2), np.array([1.0, -np.inf])),
            "t": torch.tensor(0.5)}
    path = atomic_write_json(tmp_path / "d.json", data)
    loaded = json.loads(path.read_text())
    assert loaded == {"nan": None, "inf": None, "3": [2, [1.0, None]], "t": 0.5}
    assert json_safe([math.nan]) == [None]


def test_atomic_savefig_writes_a_png(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    path = atomic_savefig(fig, tmp_path / "f.png")
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["f.png"]


def test_error_hierarchy_keeps_value_error_compatibility():
    assert issubclass(ConfigError, InputError) and issubclass(StoreError, InputError)
    assert issubclass(InputError, ValueError)


def test_progress_callbacks():
    seen = []
    report(lambda d, t, s="": seen.append((d, t, s)), 1, 2, "x")
    report(None, 1, 2, "x")
    assert seen == [(1, 2, "x")]
    with progress_bar("work", total=2, enabled=False) as cb:
        cb(1, 2)


def test_vocabulary_is_the_one_home_of_labels_splits_and_mu_water():
    from sinotriage import metrics, vocabulary
    from sinotriage.io import store
    from sinotriage.operators import units

    assert metrics.LABEL_NAMES is vocabulary.LABEL_NAMES
    assert store.SPLITS is vocabulary.SPLITS
    assert units.MU_WATER == vocabulary.MU_WATER == 0.0192
