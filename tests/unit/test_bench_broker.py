"""bench_broker reads PerfTest's own end-of-run summary, and fails loudly when it is not there."""

from __future__ import annotations

import pytest

from benchmarks.bench_broker import parse_summary

# PerfTest 2.22.1's closing lines, as printed by a run against Debian's rabbitmq-server 3.10.
SUMMARY = """\
id: test-165712-446, time 8.001 s, sent: 4668 msg/s, confirmed: 4668 msg/s, nacked: 0 msg/s, \
received: 5191 msg/s, min/median/75th/95th/99th consumer latency: 790/14780/23207/140152/155525 \
µs, confirm latency: 623/10913/14606/22896/30337 µs
test stopped (Reached time limit)
id: test-165712-446, sending rate avg: 3864 msg/s
id: test-165712-446, receiving rate avg: 3801 msg/s
id: test-165712-446, consumer latency min/median/75th/95th/99th 732/21108/48123/476028/497651 µs
id: test-165712-446, confirm latency min/median/75th/95th/99th 535/10410/15985/33698/115688 µs
"""


def test_the_summary_lines_give_rates_and_confirm_percentiles_not_the_last_sample() -> None:
    cell = parse_summary(SUMMARY)
    assert (cell.sent, cell.received) == (3864, 3801)
    # The confirm line's median and 99th, in ms; not the consumer latency, not the last sample.
    assert (cell.confirm_p50_ms, cell.confirm_p99_ms) == (10.410, 115.688)


def test_a_build_that_also_prints_the_maximum_is_read_the_same() -> None:
    text = SUMMARY.replace(
        "confirm latency min/median/75th/95th/99th 535/10410/15985/33698/115688 µs",
        "confirm latency min/median/75th/95th/99th/max 535/10410/15985/33698/115688/190000 µs",
    )
    assert parse_summary(text).confirm_p99_ms == 115.688


def test_output_without_a_summary_is_an_error_that_shows_it() -> None:
    cut = SUMMARY.split("test stopped")[0]
    with pytest.raises(RuntimeError, match="no PerfTest summary") as raised:
        parse_summary(cut)
    assert "time 8.001 s" in str(raised.value)
