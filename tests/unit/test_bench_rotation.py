"""The benchmarks' order: no contender always runs first (or last), where the machine differs."""

from __future__ import annotations

from benchmarks.bench_backup import rotation


def test_two_contenders_alternate() -> None:
    assert [rotation(["ours", "plain"], r) for r in range(4)] == [
        ["ours", "plain"],
        ["plain", "ours"],
        ["ours", "plain"],
        ["plain", "ours"],
    ]


def test_over_three_rounds_each_of_three_takes_every_place_once() -> None:
    names = ["ours", "plain", "floor"]
    orders = [rotation(names, r) for r in range(3)]
    for place in range(3):
        assert sorted(order[place] for order in orders) == sorted(names)
    assert all(sorted(order) == sorted(names) for order in orders)
