"""Which problems a practice round takes (pure, no Ray)."""

from orca_math.practice.config import PracticeConfig
from orca_math.practice.core import practice_ranges

PROBLEMS = [{"id": str(i)} for i in range(10)]


def ids(rows):
    return [r["id"] for r in rows]


def practice_slice(problems, offset, limit):
    """The problems a round takes: the rows of :func:`practice_ranges`, as the stage copies them."""
    return [p for lo, hi in practice_ranges(len(problems), offset, limit) for p in problems[lo:hi]]


def test_first_round_takes_the_first_problems():
    assert ids(practice_slice(PROBLEMS, 0, 3)) == ["0", "1", "2"]


def test_later_rounds_take_fresh_problems_and_wrap_around():
    assert ids(practice_slice(PROBLEMS, 3, 3)) == ["3", "4", "5"]
    assert ids(practice_slice(PROBLEMS, 9, 3)) == ["9", "0", "1"]
    assert ids(practice_slice(PROBLEMS, 12, 3)) == ["2", "3", "4"]


def test_no_limit_takes_every_problem_once():
    assert ids(practice_slice(PROBLEMS, 4, None)) == [str(i) for i in [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]]
    assert ids(practice_slice(PROBLEMS, 0, 50)) == ids(PROBLEMS)
    assert practice_slice([], 5, 3) == []


def test_a_round_takes_at_most_two_ranges_in_order():
    assert practice_ranges(10, 8, 5) == [(8, 10), (0, 3)]
    assert practice_ranges(10, 2, 5) == [(2, 7)]
    assert practice_ranges(0, 2, 5) == []


def test_offset_is_part_of_the_config_so_a_round_rerun_sees_it():
    assert PracticeConfig(offset=300, limit=300).identity() != PracticeConfig(limit=300).identity()
