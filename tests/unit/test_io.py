"""Table references, replaceWhere predicates: pure logic, no Spark needed."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone

import pytest
from partner_hunt.io import TableFormatError, TableRef, equality_predicate, in_predicate


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
