"""Which member `db promote` promotes (infra.platforms.docker.failover.choose)."""

from __future__ import annotations

import pytest

from infra.platforms.docker.failover import FailoverError, Member, choose


def member(index: int, in_recovery: bool | None, received: int = 0) -> Member:
    return Member(index, f"persistence-dev-m{index}", in_recovery, received)


def test_the_standby_that_received_the_most_wal_is_promoted() -> None:
    members = [member(0, None), member(1, True, 500), member(2, True, 900), member(3, True, 10)]
    assert choose(members, old=0).index == 2


def test_a_tie_goes_to_the_lowest_member() -> None:
    members = [member(0, None), member(1, True, 900), member(2, True, 900)]
    assert choose(members, old=0).index == 1


def test_a_member_already_promoted_by_an_interrupted_run_is_the_one() -> None:
    members = [member(0, None), member(1, True, 900), member(2, False, 100)]
    assert choose(members, old=0).index == 2


def test_the_old_primary_is_never_chosen_even_if_it_answers() -> None:
    members = [member(0, False, 10_000), member(1, True, 1)]
    assert choose(members, old=0).index == 1


def test_no_standby_answering_is_a_clear_refusal() -> None:
    with pytest.raises(FailoverError, match="no replica answers"):
        choose([member(0, None), member(1, None)], old=0)
