"""Public ids: random integers that JavaScript keeps exactly."""

from __future__ import annotations

from itertools import pairwise

from gateway.store.ids import ID_MAX, ID_MIN, new_public_id


def test_ids_are_integers_below_two_to_the_53() -> None:
    ids = [new_public_id() for _ in range(10_000)]

    assert all(isinstance(i, int) and ID_MIN <= i <= ID_MAX < 2**53 for i in ids)
    assert all(float(i) == i for i in ids)  # exact as an IEEE-754 double, as in JavaScript


def test_ids_are_not_sequential_so_nobody_can_count_or_guess_neighbours() -> None:
    ids = [new_public_id() for _ in range(1_000)]

    assert len(set(ids)) == len(ids)
    gaps = {abs(b - a) for a, b in pairwise(ids)}
    assert min(gaps) > 1_000  # no two consecutive draws are neighbours
    assert ids != sorted(ids)
