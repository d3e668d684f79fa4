"""docs/models.md states the parameter counts the zoo's models really have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sinotriage import models

DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def _doc_counts() -> dict[tuple[str, int], int]:
    """(name, spatial_dims) -> parameters, read from the table of docs/models.md."""
    counts: dict[tuple[str, int], int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([a-z0-9_]+)`", cells[0])
        if names and "/ `_distilled`" in cells[0]:
            names = [names[0], names[0] + "_distilled"]
        values = re.findall(r"(?:(2D|3D) )?([\d,]{3,})", cells[5])
        if len(names) == 2:  # "a / b"
            for name, (_, v) in zip(names, values, strict=True):
                counts[(name, 2)] = int(v.replace(",", ""))
        else:
            for dims, v in values:
                counts[(names[0], int(dims[0]) if dims else 2)] = int(v.replace(",", ""))
    return counts


def test_doc_table_lists_every_model():
    listed = {name for name, _ in _doc_counts()}
    assert listed == set(models.available())


@pytest.mark.slow
def test_doc_parameter_counts_match_the_models():
    for (name, dims), stated in _doc_counts().items():
        net = models.create(name, in_channels=1, num_classes=1, spatial_dims=dims)
        assert models.count_parameters(net) == stated, (name, dims)
