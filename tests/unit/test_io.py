"""Table references, replaceWhere predicates and file statistics: pure logic, no Spark needed."""

from __future__ import annotations

from datetime import date, datetime, timezone

import os

import pytest

from partner_hunt.io import TableFormatError, TableRef, equality_predicate, in_predicate, stats_day


@pytest.mark.parametrize(
    "text,is_path",
    [
        ("lake/message_events", True),
        ("/data/lake/events", True),
        ("./events", True),
        ("abfss://c@acct.dfs.core.windows.net/events", True),
        ("s3://bucket/events", True),
        ("main.security.message_events", False),
        ("security.message_events", False),
        ("events", False),
        ("`my-catalog`.sec.events", False),
    ],
)
def test_path_or_table_name(text, is_path):
    assert TableRef.parse(text).is_path is is_path


def test_bad_table_name_is_named():
    with pytest.raises(TableFormatError, match="'bad name; drop' is neither a path"):
        TableRef.parse("bad name; drop")


def test_state_tables_sit_beside_the_output():
    assert TableRef.parse("lake/results").sibling("partials") == TableRef(os.path.abspath("lake/results_partials"), True)
    assert TableRef.parse("c.s.results").sibling("run_log") == TableRef("c.s.results_run_log", False)


def test_predicates_render_typed_values():
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert (
        equality_predicate({"WindowStart": start, "WindowEnd": None, "Mode": "kql"})
        == "WindowStart = TIMESTAMP '2026-03-01 00:00:00' AND WindowEnd IS NULL AND Mode = 'kql'"
    )
    assert equality_predicate({"Variant": "it's"}) == "Variant = 'it\\'s'"
    assert in_predicate("Day", [date(2026, 3, 1)]) == "Day IN (DATE '2026-03-01')"
    with pytest.raises(ValueError):
        equality_predicate({"a; drop": 1})


def _stats(low, high, nulls=0, column="Timestamp"):
    """A Delta `add.stats` string as the writer records it."""
    import json

    return json.dumps(
        {"numRecords": 3, "minValues": {column: low}, "maxValues": {column: high}, "nullCount": {column: nulls}}
    )


@pytest.mark.parametrize(
    "stats,expected",
    [
        # A day of new data: settled without opening the file.
        (_stats("2026-01-02T00:00:00.000Z", "2026-01-02T23:59:59.999Z"), date(2026, 1, 2)),
        # Offsets are the session's time zone; the day is the UTC one.
        (_stats("2026-01-01T23:30:00.000-01:00", "2026-01-02T22:00:00.000-01:00"), date(2026, 1, 2)),
        # Spanning midnight (UTC): the file must be read to find its days.
        (_stats("2026-01-01T23:59:59.999Z", "2026-01-02T00:00:00.000Z"), None),
        # A null Timestamp belongs to no day, but the file must still be looked at.
        (_stats("2026-01-02T01:00:00.000Z", "2026-01-02T02:00:00.000Z", nulls=1), None),
        # TIMESTAMP_NTZ statistics carry no zone: no UTC day can be read off them.
        (_stats("2026-01-02T01:00:00.000", "2026-01-02T02:00:00.000"), None),
        # No statistics, or none for this column (not among the indexed ones, or a mapped name).
        (None, None),
        ('{"numRecords": 3}', None),
        (_stats("2026-01-02T01:00:00.000Z", "2026-01-02T02:00:00.000Z", column="col-1f2e"), None),
        ("not json", None),
    ],
)
def test_stats_settle_a_file_day_only_when_unambiguous(stats, expected):
    assert stats_day(stats, "Timestamp") == expected
