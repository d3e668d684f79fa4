"""run_tasks: results in order, progress through callbacks, failures reported together."""

from __future__ import annotations

import pytest

from sinotriage.parallel import run_tasks
from sinotriage.progress import counting


def _square(x: int) -> int:
    return x * x


def test_run_tasks_reports_progress_through_the_callback():
    calls = []
    out = run_tasks(_square, [3, 1, 2], workers=0, description="squares",
                    progress=lambda done, total, text="": calls.append((done, total, text)))
    assert out == [9, 1, 4]
    assert calls == [(1, 3, "squares"), (2, 3, "squares"), (3, 3, "squares")]
    assert run_tasks(_square, [2], workers=0, progress=False) == [4]


def test_counting_accepts_a_callback_true_or_nothing():
    seen = []
    with counting(lambda d, t, s="": seen.append((d, t, s)), "x", 2) as advance:
        advance()
        advance()
    assert seen == [(1, 2, "x"), (2, 2, "x")]
    for flag in (True, False, None):  # a bar (drawn only on a terminal) or nothing
        with counting(flag, "x", 1) as advance:
            advance()


def _fails_on_odd(x: int) -> int:
    from sinotriage.errors import InputError

    if x % 2:
        raise InputError(f"item {x}: bad input")
    return x


def _fails_with_a_bug(x: int) -> int:
    return {}[x]


def test_tasks_that_fail_on_input_raise_an_input_error_and_bugs_do_not():
    from sinotriage.errors import InputError
    from sinotriage.parallel import TaskError, TaskInputError, run_tasks

    with pytest.raises(TaskInputError) as info:
        run_tasks(_fails_on_odd, [0, 1, 2, 3], workers=0, progress=False)
    assert isinstance(info.value, InputError) and isinstance(info.value, TaskError)
    assert str(info.value) == "2 of 4 tasks failed (1, 3); first failure, 1: item 1: bad input"
    with pytest.raises(TaskError) as info:
        run_tasks(_fails_with_a_bug, [0, 1], workers=0, progress=False)
    assert not isinstance(info.value, InputError) and "KeyError" in str(info.value)
