"""The evidence drill-down: expected rows are written by hand from docs/analyst-outputs.md."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from chispa import assert_df_equality

from partner_hunt.core import evidence, hunt
from partner_hunt.core.options import CountOptions
from tests.conftest import T0, event, hunt_results


def evidence_through_run(events_df, results_df, *, mode="kql", normalize=False, dedupe_edits=False, count_messages=False, sample_size=10, include_senders=False):
    """The evidence rows `run` writes: `hunt.count_window` with the evidence on, then
    `evidence.evidence_from_counts` over its per-day rows, as `plan_window` and the outputs step do."""
    counts_df = hunt.count_window(events_df, CountOptions(mode, normalize, count_messages, dedupe_edits), evidence=True)
    return evidence.evidence_from_counts(
        counts_df, results_df, normalize=normalize, count_messages=count_messages, sample_size=sample_size, include_senders=include_senders
    )


RESULTS_DDL = (
    "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, "
    "IncomingTeamsMessagesWithThreats long, Bad_Traffic_Percentage double, WindowStart timestamp, "
    "WindowEnd timestamp, Mode string, RunId string, ComputedAt timestamp"
)
EVIDENCE_DDL = (
    "TenantId string, SenderFromDomain string, WindowStart timestamp, WindowEnd timestamp, Mode string, "
    "OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, Bad_Traffic_Percentage double, "
    "FirstThreatSeen timestamp, LastThreatSeen timestamp, DistinctThreatMessages long, DistinctSenders long, "
    "ThreatTypeCounts array<struct<ThreatType:string,Count:long>>, "
    "InboundSenderDomains array<struct<Domain:string,Count:long>>, "
    "SampleTeamsMessageIds array<string>, SenderAddresses array<string>, "
    "DailyCounts array<struct<Day:date,OutboundTeamsMessages:long,IncomingTeamsMessagesWithThreats:long>>, "
    "RunId string, ComputedAt timestamp"
)
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
END = datetime(2026, 3, 3, tzinfo=timezone.utc)
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(days=1)


def results(spark, mode, *rows):
    """Results rows (domain, outbound, inbound, ratio) of one window, as the results table holds them."""
    return spark.createDataFrame(
        [("t1", d, o, i, r, START, END, mode, "run-1", START) for d, o, i, r in rows], RESULTS_DDL
    )


def expected(spark, mode, *rows):
    return spark.createDataFrame(
        [("t1", d, START, END, mode, o, i, r, *rest, "run-1", START) for d, o, i, r, *rest in rows], EVIDENCE_DDL
    )


def check(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def sample_events(events):
    return events(
        event(to=["a@p.com", "b@q.com"], owned=True, msg="o1", ts=T0),
        event(to=["c@p.com"], owned=True, msg="o2", ts=T2),
        event(to=["x@p.com"], owned=False, threats="Phish, Malware", sender="bad@evil.com", msg="i1", ts=T1),
        event(to=["y@p.com", "z@q.com"], owned=False, threats=" ", sender="bad2@evil.com", msg="i2", ts=T2),
        event(to=["w@r.com"], owned=False, threats="Spam", sender="s@r.com", msg="i3", ts=T1),
        # Not external: in no side of the hunt, so in no evidence either.
        event(to=["v@p.com"], external=False, owned=False, threats="Phish", msg="i4", ts=T1),
    )


def test_kql_evidence_keys_inbound_threats_by_recipient_domain(spark, events):
    res = results(spark, "kql", ("p.com", 2, 2, 1.0), ("q.com", 1, 1, 1.0))
    actual = evidence_through_run(sample_events(events), res, mode="kql")
    # p.com's "inbound threats" were sent by evil.com to recipients at p.com: the published query's quirk.
    check(
        actual,
        expected(
            spark,
            "kql",
            (
                "p.com", 2, 2, 1.0, T1, T2, 2, 2,
                [("(blank)", 1), ("Malware", 1), ("Phish", 1)],
                [("evil.com", 2)],
                ["i1", "i2"],
                None,
                [(DAY1, 1, 1), (DAY2, 1, 1)],
            ),
            (
                "q.com", 1, 1, 1.0, T2, T2, 1, 1,
                [("(blank)", 1)],
                [("evil.com", 1)],
                ["i2"],
                None,
                [(DAY1, 1, 0), (DAY2, 0, 1)],
            ),
        ),
    )


def test_corrected_evidence_keys_inbound_by_sender_with_bounded_sample_and_addresses(spark, events):
    df = events(
        event(to=["a@evil.com"], owned=True, msg="o1", ts=T0),
        event(to=["x@contoso.com"], owned=False, threats="Phish", sender="b@evil.com", msg="i3", ts=T2),
        event(to=["x@contoso.com", "y@contoso.com"], owned=False, threats="Phish,Spam", sender="a@evil.com", msg="i1", ts=T1),
        event(to=["x@contoso.com"], owned=False, threats="Phish", sender="a@evil.com", msg="i2", ts=T1),
        # The same message re-emitted by an edit on the same day: one message when counting messages.
        event(to=["x@contoso.com"], owned=False, threats="Phish", sender="a@evil.com", msg="i2", ts=T1, report="r-i2b"),
    )
    res = results(spark, "corrected", ("evil.com", 1, 3, 3.0))
    actual = evidence_through_run(
        df, res, mode="corrected", count_messages=True, sample_size=2, include_senders=True
    )
    check(
        actual,
        expected(
            spark,
            "corrected",
            (
                "evil.com", 1, 3, 3.0, T1, T2, 3, 2,
                [("Phish", 3), ("Spam", 1)],
                [("evil.com", 3)],
                ["i1", "i2"],  # the two smallest ids: the same two on every rerun
                ["a@evil.com", "b@evil.com"],
                [(DAY1, 1, 2), (DAY2, 0, 1)],
            ),
        ),
    )


def test_domains_missing_from_results_get_no_evidence_and_unknown_senders_are_null(spark, events):
    df = events(
        event(to=["a@p.com"], owned=True, msg="o1", ts=T0),
        event(to=["x@p.com"], owned=False, threats="Phish", sender=None, msg="i1", ts=T1),
        event(to=["x@other.com"], owned=True, msg="o2", ts=T0),
    )
    # gone.com stands for a results row the events do not back (results from another run): it keeps
    # its evidence row, with every detail null rather than empty.
    res = results(spark, "kql", ("p.com", 1, 1, 1.0), ("gone.com", 1, 1, 1.0))
    actual = evidence_through_run(df, res, mode="kql")
    check(
        actual,
        expected(
            spark,
            "kql",
            ("p.com", 1, 1, 1.0, T1, T1, 1, None, [("Phish", 1)], None, ["i1"], None, [(DAY1, 1, 1)]),
            ("gone.com", 1, 1, 1.0, None, None, None, None, None, None, None, None, None),
        ),
    )


def test_daily_counts_add_up_to_the_hunts_counts(spark, events):
    df = sample_events(events)
    for mode in ("kql", "corrected"):
        hunted = hunt_results(df, mode=mode).collect()
        res = results(
            spark,
            mode,
            *[(r.SenderFromDomain, r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats, None) for r in hunted],
        )
        got = {
            r.SenderFromDomain: (
                sum(d.OutboundTeamsMessages for d in r.DailyCounts),
                sum(d.IncomingTeamsMessagesWithThreats for d in r.DailyCounts),
            )
            for r in evidence_through_run(df, res, mode=mode).collect()
        }
        assert got == {r.SenderFromDomain: (r.OutboundTeamsMessages, r.IncomingTeamsMessagesWithThreats) for r in hunted}


def test_a_type_listed_twice_counts_once_and_sender_domains_tie_by_name(spark, events):
    df = events(
        event(to=["a@p.com"], owned=True, msg="o1", ts=T0),
        event(to=["x@p.com"], owned=False, threats="Phish, Phish,Spam", sender="m@zeta.com", msg="i1", ts=T1),
        event(to=["y@p.com"], owned=False, threats="Phish", sender="m@alpha.com", msg="i2", ts=T1),
        # No "@": KQL's split gives the "" domain, which is a sender domain like any other.
        event(to=["y@p.com"], owned=False, threats="Spam", sender="noat", msg="i3", ts=T1),
    )
    res = results(spark, "kql", ("p.com", 1, 3, 3.0))
    actual = evidence_through_run(df, res, mode="kql")
    check(
        actual,
        expected(
            spark,
            "kql",
            (
                "p.com", 1, 3, 3.0, T1, T1, 3, 3,
                [("Phish", 2), ("Spam", 2)],
                [("", 1), ("alpha.com", 1), ("zeta.com", 1)],
                ["i1", "i2", "i3"],
                None,
                [(DAY1, 1, 3)],
            ),
        ),
    )
