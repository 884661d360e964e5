"""KQL parity of the core, one edge case per test; expected rows are derived by hand from
docs/kql-parity.md, never from the code under test.

Every parity test runs three times, through each path that ships (the `hunted` fixture):
`run` with the evidence on (`hunt.count_window` per day with the evidence's rows, then
`hunt.window_results`), `run` with the evidence off (per domain), and the daily partials of
`backfill` and `run --incremental` (`hunt.count_days`, `partials.with_markers`, `partials.rollup`,
then `hunt.window_results`). The same functions, in the same order, as the commands call them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.core import hunt, partials, quality
from partner_hunt.core.tables import RESULTS_DDL, columns
from tests.conftest import T0, event, hunt_options

# The hunt's own columns: the head of the results table's DDL.
RESULT_DDL = ", ".join(RESULTS_DDL.split(", ")[:5])
assert columns(RESULT_DDL) == hunt.RESULT_COLUMNS


PATHS = ("run, evidence on", "run, evidence off", "daily partials")


@pytest.fixture(params=PATHS)
def hunted(request):
    """The hunt through one shipped path: `(events_df, **settings) -> result rows`."""

    def through(events_df, **settings):
        options, finish = hunt_options(**settings)
        if request.param == "daily partials":
            first, end = (T0 - timedelta(days=3)).date(), (T0 + timedelta(days=3)).date()
            counts_df = (
                hunt.count_days(events_df, options)
                .transform(partials.with_markers, options.variant, options.mode, partials.days_between(first, end))
                .transform(partials.rollup, options.variant, first, end)
            )
        else:
            counts_df = hunt.count_window(events_df, options, evidence=request.param == "run, evidence on")
        return hunt.window_results(counts_df, finish)

    return through


def expect(spark, *rows):
    return spark.createDataFrame([("t1", *r) for r in rows], RESULT_DDL)


def check(actual_df, expected_df):
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def out(*to, **kw):
    """An outbound message: external thread owned by us."""
    return event(to=list(to), owned=True, **kw)


def inbound(*to, threats="Phish", **kw):
    """An inbound external message with a threat verdict."""
    return event(to=list(to), owned=False, threats=threats, **kw)


def test_counts_message_times_recipient_rows_per_domain(spark, events, hunted):
    df = events(
        out("a@p.com", "b@p.com", "c@q.com", msg="o1"),
        out("d@p.com", msg="o2"),
        inbound("x@p.com", "y@p.com", msg="i1"),
        inbound("z@q.com", msg="i2"),
    )
    # p.com: 3 outbound rows, 2 inbound rows; q.com: 1 and 1.
    check(hunted(df), expect(spark, ("p.com", 3, 2, 0.67), ("q.com", 1, 1, 1.0)))


def test_null_recipient_details_is_one_row_with_empty_domain(spark, events, hunted):
    df = events(
        event(to=None, owned=True, msg="o1"),
        event(to=None, owned=False, threats="Phish", msg="i1"),
        event(to=None, owned=False, threats="Phish", msg="i2"),
    )
    check(hunted(df), expect(spark, ("", 1, 2, 2.0)))


def test_empty_recipient_details_produces_no_row(spark, events, hunted):
    df = events(
        event(to=[], owned=True, msg="o1"),
        event(to=[], owned=False, threats="Phish", msg="i1"),
        out("a@p.com", msg="o2"),
        inbound("b@p.com", msg="i2"),
    )
    # Had [] behaved like null, an ("", 1, 1) row would appear.
    check(hunted(df), expect(spark, ("p.com", 1, 1, 1.0)))


def test_addresses_without_at_or_with_several(spark, events, hunted):
    df = events(
        out("nobody", "", None, "user@", msg="o1"),  # four rows in the "" group
        out("a@b@c.com", "@x.com", msg="o2"),  # domains b and x.com
        inbound("plain", msg="i1"),  # ""
        inbound("q@b@zzz", "@x.com", msg="i2"),  # b and x.com
        inbound("c.com@c.com", msg="i3"),  # c.com has no outbound
    )
    check(
        hunted(df),
        expect(spark, ("", 4, 1, 0.25), ("b", 1, 1, 1.0), ("x.com", 1, 1, 1.0)),
    )


def test_domains_are_case_and_space_sensitive(spark, events, hunted):
    df = events(
        out("a@Fabrikam.COM", "b@fabrikam.com", "c@ fabrikam.com", msg="o1"),
        inbound("x@fabrikam.com", msg="i1"),
        inbound("y@ fabrikam.com", msg="i2"),
        inbound("z@FABRIKAM.COM", msg="i3"),
    )
    check(hunted(df), expect(spark, ("fabrikam.com", 1, 1, 1.0), (" fabrikam.com", 1, 1, 1.0)))


def test_null_flags_put_the_row_on_neither_side(spark, events, hunted):
    df = events(
        out("a@p.com", msg="o1"),
        event(to=["b@p.com"], owned=None, msg="o2"),
        event(to=["c@p.com"], external=None, owned=True, msg="o3"),
        event(to=["d@p.com"], external=False, owned=True, msg="o4"),
        inbound("x@p.com", msg="i1"),
        event(to=["y@p.com"], owned=None, threats="Phish", msg="i2"),
        event(to=["z@p.com"], external=None, owned=False, threats="Phish", msg="i3"),
    )
    check(hunted(df), expect(spark, ("p.com", 1, 1, 1.0)))


def test_threat_types_empty_null_and_lone_space(spark, events, hunted):
    df = events(
        out("a@p.com", msg="o1"),
        inbound("x@p.com", threats="", msg="i1"),
        inbound("x@p.com", threats=None, msg="i2"),
        inbound("x@p.com", threats=" ", msg="i3"),  # a space is not empty: a threat
        inbound("x@p.com", threats="Spam", msg="i4"),
    )
    check(hunted(df), expect(spark, ("p.com", 1, 2, 2.0)))


def test_inner_join_drops_one_sided_domains(spark, events, hunted):
    df = events(
        out("a@only-out.com", msg="o1"),
        inbound("x@only-in.com", msg="i1"),
        event(to=["y@clean.com"], owned=False, threats="", msg="i2"),
        out("b@clean.com", msg="o2"),
    )
    check(hunted(df), expect(spark))


def test_owned_thread_threats_count_only_as_outbound(spark, events, hunted):
    df = events(
        event(to=["a@p.com"], owned=True, threats="Phish", msg="o1"),
        inbound("x@p.com", msg="i1"),
    )
    check(hunted(df), expect(spark, ("p.com", 1, 1, 1.0)))


# (outbound rows, inbound threats, Kusto's ratio). 1/8 = 0.125 exactly: 12.5 rounds away from
# zero. 29/200 is 0.14499999999999999 as a double: scaled, 14.499999999999998, which rounds to 0.14
# (Kusto divides in double precision first).
RATIOS = [(8, 1, 0.13), (200, 29, 0.14), (3, 1, 0.33), (3, 2, 0.67), (1, 3, 3.0), (400, 1, 0.0), (200, 1, 0.01)]


def test_ratio_rounds_the_scaled_double_half_away_from_zero(spark, events, hunted):
    rows = []
    for n, (outbound, inbound_count, _) in enumerate(RATIOS):
        rows.append(out(*[f"u{i}@p{n}.com" for i in range(outbound)], msg=f"o{n}"))
        rows += [inbound(f"x@p{n}.com", msg=f"i{n}-{i}") for i in range(inbound_count)]
    expected = [(f"p{n}.com", o, i, ratio) for n, (o, i, ratio) in enumerate(RATIOS)]
    check(hunted(events(*rows)), expect(spark, *expected))


def test_ratio_can_be_left_out(spark, events, hunted):
    df = events(out("a@p.com", msg="o1"), inbound("x@p.com", msg="i1"))
    check(hunted(df, include_ratio=False), expect(spark, ("p.com", 1, 1, None)))


def test_exclude_domains_is_exact_in_kql_mode(spark, events, hunted):
    df = events(
        out("a@contoso.com", "b@Contoso.com", "c@p.com", msg="o1"),
        inbound("x@contoso.com", "y@Contoso.com", "z@p.com", msg="i1"),
    )
    check(
        hunted(df, exclude_domains=["contoso.com"]),
        expect(spark, ("Contoso.com", 1, 1, 1.0), ("p.com", 1, 1, 1.0)),
    )


def test_window_is_half_open(spark, events, hunted):
    start, end = T0, T0 + timedelta(days=1)
    df = events(
        out("a@p.com", msg="o1", ts=start),
        out("b@p.com", msg="o2", ts=end - timedelta(microseconds=1)),
        out("c@p.com", msg="o3", ts=end),
        out("d@p.com", msg="o4", ts=start - timedelta(seconds=1)),
        inbound("x@p.com", msg="i1", ts=end),
        inbound("y@p.com", msg="i2", ts=start + timedelta(hours=1)),
    )
    windowed = df.transform(quality.filter_canonical_window, start, end)
    check(hunted(windowed), expect(spark, ("p.com", 2, 1, 0.5)))


def test_tenant_exclusions_drop_a_domain_for_that_tenant_only(spark, events, hunted):
    df = events(
        out("a@t1.com", "b@p.com", msg="o1", tenant="t1"),
        inbound("x@t1.com", "y@p.com", msg="i1", tenant="t1"),
        out("a@t1.com", msg="o2", tenant="t2"),
        inbound("x@t1.com", msg="i2", tenant="t2"),
    )
    expected = spark.createDataFrame(
        [("t1", "p.com", 1, 1, 1.0), ("t2", "t1.com", 1, 1, 1.0)], RESULT_DDL
    )
    check(hunted(df, tenant_exclude={"t1": ["t1.com"]}), expected)
    # Normalised like the domains when normalisation is on.
    check(hunted(df, normalize_domains=True, tenant_exclude={"t1": [" T1.COM."]}), expected)


def test_tenants_are_counted_separately(spark, events, hunted):
    df = events(
        out("a@p.com", msg="o1", tenant="t1"),
        inbound("x@p.com", msg="i1", tenant="t1"),
        out("a@p.com", msg="o2", tenant="t2"),
        inbound("x@p.com", msg="i2", tenant="t3"),
    )
    check(hunted(df), expect(spark, ("p.com", 1, 1, 1.0)))


def test_corrected_mode_takes_inbound_domain_from_sender(spark, events, hunted):
    df = events(
        out("a@Partner.com", "b@partner.com ", msg="o1"),
        out("c@partner.com", msg="o2"),
        # The attacker at the partner writes to our users: recipients are ours.
        inbound("me@contoso.com", "you@contoso.com", sender="evil@PARTNER.com", msg="i1"),
        inbound("me@contoso.com", sender="evil@partner.com", msg="i2"),
        out("boss@contoso.com", msg="o3"),
    )
    # Distinct messages: partner.com has o1, o2 outbound (o1 once despite two recipients).
    check(
        hunted(df, mode="corrected", normalize_domains=True, count_messages=True),
        expect(spark, ("partner.com", 2, 2, 1.0)),
    )
    # The same data in kql mode reports our own domain instead.
    check(hunted(df), expect(spark, ("contoso.com", 1, 3, 3.0)))


def test_corrected_mode_switches_can_be_turned_off(spark, events, hunted):
    df = events(
        out("a@partner.com", "b@partner.com", msg="o1"),
        inbound("me@contoso.com", sender="evil@Partner.com", msg="i1"),
        inbound("me@contoso.com", sender="evil@partner.com", msg="i2"),
    )
    check(
        hunted(df, mode="corrected", normalize_domains=False, count_messages=False),
        expect(spark, ("partner.com", 2, 1, 0.5)),
    )


def test_count_messages_counts_distinct_messages(spark, events, hunted):
    df = events(
        out("a@p.com", "b@p.com", msg="o1"),
        out("c@p.com", msg="o1"),  # an edit re-emitted with the same id
        inbound("x@p.com", "y@p.com", msg="i1"),
    )
    check(hunted(df, count_messages=True), expect(spark, ("p.com", 1, 1, 1.0)))


def test_latest_edit_is_kept(spark, events, hunted):
    later = T0 + timedelta(minutes=5)
    df = events(
        out("a@p.com", msg="o1", report="r1"),
        out("a@p.com", "b@q.com", msg="o1", report="r2", edit=later),
        out("c@q.com", msg="o2"),
        inbound("x@p.com", msg="i1"),
        inbound("y@q.com", msg="i2"),
    )
    # Only r2, the later version of o1, counts: p.com once, q.com from r2 and o2.
    check(hunted(df, dedupe_edits=True), expect(spark, ("p.com", 1, 1, 1.0), ("q.com", 2, 1, 0.5)))
    check(hunted(df), expect(spark, ("p.com", 2, 1, 0.5), ("q.com", 2, 1, 0.5)))


def test_quarantined_rows_are_read_and_counted_but_never_hunted(spark, events):
    df = events(
        out("a@p.com", msg="o1"),
        out("b@p.com", msg="o2"),
        inbound("x@p.com", msg="i1"),
        inbound("y@p.com", msg="i2"),
        event(to=["z@p.com"], owned=False, external=False, msg="n1"),
    ).withColumn("QuarantineReason", F.when(F.col("TeamsMessageId").isin("o2", "i2"), F.lit("BAD_FLAG")))
    counts = hunt.count_domains(df).select("Domain", "OutboundTeamsMessages", "IncomingTeamsMessagesWithThreats", *hunt.ACCOUNTING)
    # p.com: o1 and i1 only. The null-Domain group holds the rows that yield no domain: o2 and i2
    # (quarantined) and n1 (internal). Every row is read once; two were quarantined.
    expected = spark.createDataFrame(
        [("p.com", 1, 1, 2, 2, 0), (None, 0, 0, 0, 3, 2)],
        "Domain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
        "RecipientRows long, RowsRead long, RowsQuarantined long",
    )
    check(counts, expected)


def test_sort_is_descending_with_domain_tie_break(spark, events, hunted):
    df = events(
        out("a@b.com", "b@b.com", msg="o1"),
        out("a@a.com", "b@a.com", msg="o2"),
        out("a@c.com", "b@c.com", "c@c.com", msg="o3"),
        inbound("x@a.com", "x@b.com", "x@c.com", msg="i1"),
    )
    rows = hunt.sort_results(hunted(df)).collect()
    assert [(r.SenderFromDomain, r.OutboundTeamsMessages) for r in rows] == [("c.com", 3), ("a.com", 2), ("b.com", 2)]


def test_no_ansi_error_on_odd_input(spark, events, hunted):
    odd_time = datetime(2026, 3, 1, tzinfo=timezone.utc)
    df = events(
        out("", "@", "@@", "a@", msg="o1", ts=odd_time),
        inbound("@", "", msg="i1", ts=odd_time),
    )
    # "" from "", "a@"; "" from "@" (split gives ["", ""]), and "" from "@@": all the "" group.
    check(hunted(df), expect(spark, ("", 4, 2, 0.5)))


def test_accounting_explode_keeps_one_row_for_every_row_that_yields_no_domain(spark, events):
    """With `counted`, rows the hunt skips stay as one null-domain row, and FirstOfRow marks each
    input row exactly once, so one aggregation can count rows read beside the domains."""
    df = events(
        out("a@p.com", "b@q.com", msg="o1"),  # counted: two domain rows
        event(to=None, owned=True, msg="o2"),  # counted, null recipients: one "" row (mv-expand)
        event(to=[], owned=True, msg="o3"),  # counted, empty: no domain, still read
        event(to=["c@p.com"], external=False, msg="x1"),  # internal: not counted
        inbound("d@p.com", threats="", msg="i1"),  # inbound without a threat: not counted
        out("e@p.com", msg="q1"),  # stands for a quarantined row: excluded by `counted`
    )
    counted = hunt.is_hunt_row() & (df["TeamsMessageId"] != "q1")
    actual = hunt.explode_hunt_domains(df, "kql", False, counted).select(
        "TeamsMessageId", "IsOutbound", "Domain", hunt.FIRST_OF_ROW
    )
    expected = spark.createDataFrame(
        [
            ("o1", True, "p.com", True),
            ("o1", True, "q.com", False),
            ("o2", True, "", True),
            ("o3", None, None, True),
            ("x1", None, None, True),
            ("i1", None, None, True),
            ("q1", None, None, True),
        ],
        "TeamsMessageId string, IsOutbound boolean, Domain string, FirstOfRow boolean",
    )
    check(actual, expected)


def test_latest_edit_is_ranked_among_its_own_kind(spark, events):
    """A later version that is quarantined must not hide the good version before it."""
    later = T0 + timedelta(minutes=5)
    df = events(
        out("a@p.com", msg="o1", report="r1"),
        out("a@p.com", msg="o1", report="r2", edit=later),
    ).withColumn("Good", F.col("ReportId") == "r1")
    flagged = df.transform(hunt.with_latest_edit_flag, "Latest", F.col("Good")).select("ReportId", "Latest")
    check(flagged, spark.createDataFrame([("r1", True), ("r2", True)], "ReportId string, Latest boolean"))
    unranked = df.transform(hunt.with_latest_edit_flag, "Latest").select("ReportId", "Latest")
    check(unranked, spark.createDataFrame([("r1", False), ("r2", True)], "ReportId string, Latest boolean"))
