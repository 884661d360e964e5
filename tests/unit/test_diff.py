"""The mode diff on inline data: both modes from the same events, compared by hand."""

from __future__ import annotations

from chispa import assert_df_equality

from partner_hunt.core import diff
from tests.conftest import event, hunt_results

DIFF_DDL = (
    "TenantId string, SenderFromDomain string, Status string, KqlOutbound long, KqlInbound long, "
    "CorrectedOutbound long, CorrectedInbound long, Why string"
)


def test_compare_modes_names_one_sided_domains_and_count_changes(spark, events):
    df = events(
        event(to=["a@p.com"], owned=True, msg="o1"),
        event(to=["b@q.com"], owned=True, msg="o2"),
        event(to=["c@r.com", "d@r.com"], owned=True, msg="o3"),
        event(to=["e@Mixed.com"], owned=True, msg="o4"),
        # p.com sends a threat to our user: only the corrected (sender-side) hunt sees it.
        event(to=["me@contoso.com"], owned=False, threats="Phish", sender="x@p.com", msg="i1"),
        # A group chat: q.com's message with a threat also went to someone at r.com. kql blames r.com.
        event(to=["me@contoso.com", "f@r.com"], owned=False, threats="Malware", sender="y@q.com", msg="i2"),
        # Mixed.com is found both ways, but only kql keeps the upper-case spelling.
        event(to=["g@Mixed.com"], owned=False, threats="Spam", sender="z@Mixed.com", msg="i3"),
    )
    kql_df = hunt_results(df, mode="kql")
    corrected_df = hunt_results(df, mode="corrected", normalize_domains=True, count_messages=True)
    # By hand: kql finds r.com (2 out, 1 in via recipient f@r.com) and Mixed.com (1, 1);
    # corrected finds p.com (1, 1), q.com (1, 1) and mixed.com (1, 1).
    expected = spark.createDataFrame(
        [
            ("t1", "r.com", diff.ONLY_KQL, 2, 1, None, None, diff.WHY_RECIPIENT_SIDE),
            ("t1", "Mixed.com", diff.ONLY_KQL, 1, 1, None, None, diff.WHY_SPELLING),
            ("t1", "p.com", diff.ONLY_CORRECTED, None, None, 1, 1, diff.WHY_SENDER_SIDE),
            ("t1", "q.com", diff.ONLY_CORRECTED, None, None, 1, 1, diff.WHY_SENDER_SIDE),
            ("t1", "mixed.com", diff.ONLY_CORRECTED, None, None, 1, 1, diff.WHY_SENDER_SIDE),
        ],
        DIFF_DDL,
    )
    assert_df_equality(diff.compare_modes(kql_df, corrected_df), expected, ignore_row_order=True, ignore_nullable=True)


def test_compare_modes_counts_differ_and_same(spark):
    cols = "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long"
    kql_df = spark.createDataFrame([("t1", "a.com", 5, 2), ("t1", "b.com", 3, 1), ("t2", "a.com", 4, 4)], cols)
    corrected_df = spark.createDataFrame([("t1", "a.com", 4, 2), ("t1", "b.com", 3, 1), ("t2", "a.com", 4, 1)], cols)
    actual = diff.compare_modes(kql_df, corrected_df)
    expected = spark.createDataFrame(
        [
            ("t1", "a.com", diff.COUNTS_DIFFER, 5, 2, 4, 2, diff.WHY_OUTBOUND),
            ("t1", "b.com", diff.SAME, 3, 1, 3, 1, ""),
            ("t2", "a.com", diff.COUNTS_DIFFER, 4, 4, 4, 1, diff.WHY_INBOUND),
        ],
        DIFF_DDL,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert [r.SenderFromDomain for r in actual.transform(diff.filter_disagreements).transform(diff.sort_diff).collect()] == [
        "a.com",
        "a.com",
    ]
