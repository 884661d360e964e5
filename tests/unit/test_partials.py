"""Daily partials: roll-ups equal a direct computation over the raw rows, for any window."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partner_hunt.core import hunt, own_domains, partials, quality
from partner_hunt.core.options import CountOptions
from tests.conftest import event, hunt_results

BASE = date(2026, 3, 1)
RESULT_DDL = (
    "TenantId string, SenderFromDomain string, OutboundTeamsMessages long, "
    "IncomingTeamsMessagesWithThreats long, Bad_Traffic_Percentage double"
)


def daily_partials(events_df, mode, normalize, count_messages, dedupe, days):
    """The partials rows of `days`, through the calls `backfill.compute_days` makes."""
    key = CountOptions(mode, normalize, count_messages, dedupe).variant
    counts_df = hunt.count_domains(
        events_df, mode=mode, normalize=normalize, count_messages=count_messages, dedupe_edits=dedupe, by_day=True
    )
    return counts_df.transform(partials.with_markers, key, mode, days)


def via_partials(events_df, start, end, mode="kql", normalize=False, count_messages=False, dedupe=False, exclude=()):
    """A window rolled up from daily partials, as `days.write_window_reports` does it."""
    key = CountOptions(mode, normalize, count_messages, dedupe).variant
    days = partials.days_between(BASE - timedelta(days=1), BASE + timedelta(days=8))
    daily = daily_partials(events_df, mode, normalize, count_messages, dedupe, days)
    return partials.rollup(daily, key, start, end).transform(
        lambda df: hunt.finish_results(df, exclude=exclude, normalize=normalize)
    )


def test_rollup_sums_days_and_applies_the_join_after_summing(spark, events):
    day = lambda n, h=9: datetime(2026, 3, 1 + n, h, tzinfo=timezone.utc)  # noqa: E731
    df = events(
        event(to=["a@p.com"], owned=True, msg="o1", ts=day(0)),
        event(to=["b@p.com"], owned=True, msg="o2", ts=day(1)),
        # Inbound on another day than the outbound: each day alone fails the join, the sum passes.
        event(to=["x@p.com"], owned=False, threats="Phish", msg="i1", ts=day(2)),
        event(to=["y@q.com"], owned=False, threats="Phish", msg="i2", ts=day(3, 23)),
    )
    expected = spark.createDataFrame([("t1", "p.com", 2, 1, 0.5)], RESULT_DDL)
    actual = via_partials(df, BASE, BASE + timedelta(days=4))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    # A window that misses day 2 has no inbound for p.com, so no row at all.
    empty = via_partials(df, BASE, BASE + timedelta(days=2))
    assert_df_equality(empty, spark.createDataFrame([], RESULT_DDL), ignore_nullable=True)


def test_daily_partials_have_one_marker_per_day_and_first_last_seen(spark, events):
    t = datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
    df = events(
        event(to=["a@p.com", "b@p.com"], owned=True, msg="o1", ts=t),
        event(to=["c@p.com"], owned=True, msg="o2", ts=t + timedelta(hours=3)),
    )
    key = CountOptions("kql", False, False, False).variant
    daily = daily_partials(df, "kql", False, False, False, [BASE, BASE + timedelta(days=1)])
    expected = spark.createDataFrame(
        [
            ("t1", BASE, key, "kql", "p.com", 3, 0, t, t + timedelta(hours=3), None),
            (None, BASE, key, "kql", None, 0, 0, None, None, None),
            (None, BASE + timedelta(days=1), key, "kql", None, 0, 0, None, None, None),
        ],
        DAILY_DDL,
    )
    assert_df_equality(daily, expected, ignore_row_order=True, ignore_nullable=True)


DAILY_DDL = (
    "TenantId string, Day date, Variant string, Mode string, Domain string, OutboundTeamsMessages long, "
    "IncomingTeamsMessagesWithThreats long, FirstSeen timestamp, LastSeen timestamp, OwnDomainEvidence long"
)


def test_own_domain_evidence_rides_with_the_day_and_rolls_up_to_the_window_share(spark, events):
    """A domain named only as own-domain evidence gets a zero-count row; each tenant's day gets a
    total row (TenantId set, Domain null); summed over days they give each tenant's own domains."""
    day1, day2 = datetime(2026, 3, 1, 8, tzinfo=timezone.utc), datetime(2026, 3, 2, 8, tzinfo=timezone.utc)
    df = events(
        # Day 1: our user at contoso.com writes to p.com (evidence: the sender, contoso.com).
        event(to=["a@p.com"], owned=True, sender="me@contoso.com", msg="o1", ts=day1),
        # An inbound threat from p.com to two of our users (evidence: contoso.com, once).
        event(to=["x@contoso.com", "y@contoso.com"], owned=False, threats="Phish", sender="e@p.com", msg="i1", ts=day1),
        # Day 2: a group chat names p.com beside us (evidence: contoso.com and p.com).
        event(to=["z@contoso.com", "b@p.com"], owned=False, threats="", sender="f@p.com", msg="i2", ts=day2),
    )
    key = CountOptions("kql", False, False, False).variant
    own_df = own_domains.evidence_counts(df, normalize=False, by_day=True)
    counts_df = hunt.count_days(df, CountOptions())
    daily = counts_df.transform(partials.with_markers, key, "kql", [BASE, BASE + timedelta(days=1)], own_df)
    d2 = BASE + timedelta(days=1)
    expected = spark.createDataFrame(
        [
            # kql mode: p.com outbound (o1); inbound i1 counted under its recipients, contoso.com.
            ("t1", BASE, key, "kql", "p.com", 1, 0, day1, day1, None),
            ("t1", BASE, key, "kql", "contoso.com", 0, 2, day1, day1, 2),
            ("t1", BASE, key, "kql", None, 0, 0, None, None, 2),
            ("t1", d2, key, "kql", "contoso.com", 0, 0, None, None, 1),
            ("t1", d2, key, "kql", "p.com", 0, 0, None, None, 1),
            ("t1", d2, key, "kql", None, 0, 0, None, None, 1),
            (None, BASE, key, "kql", None, 0, 0, None, None, None),
            (None, d2, key, "kql", None, 0, 0, None, None, None),
        ],
        DAILY_DDL,
    )
    assert_df_equality(daily, expected, ignore_row_order=True, ignore_nullable=True)
    # Over both days: contoso.com is named by 3 of 3 pieces, p.com by 1 of 3 (below 0.5).
    shares = own_domains.own_domains_from_counts(daily, min_share=0.5)
    assert_df_equality(
        shares,
        spark.createDataFrame([("t1", "contoso.com", 1.0)], own_domains.OWN_DOMAINS_DDL),
        ignore_row_order=True,
        ignore_nullable=True,
    )


ADDRESSES = st.sampled_from(
    ["a@p.com", "b@P.com", "c@q.org", "nobody", "", "x@y@p.com", "@q.org", "me@contoso.com", None]
)
EVENT = st.tuples(
    st.one_of(st.none(), st.lists(ADDRESSES, max_size=3)),  # recipients: null, empty or some
    st.sampled_from([True, False, None]),  # external
    st.sampled_from([True, False, None]),  # owned
    st.sampled_from(["", None, " ", "Phish"]),  # threats
    st.sampled_from(["evil@p.com", "bad@Q.org", "x@contoso.com", "nobody"]),  # sender
    st.integers(min_value=0, max_value=6),  # day
    st.integers(min_value=0, max_value=23),  # hour
    st.sampled_from(["t1", "t2"]),  # tenant
    st.integers(min_value=0, max_value=5),  # message id (repeats are edits)
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(EVENT, min_size=1, max_size=14),
    window=st.tuples(st.integers(0, 6), st.integers(1, 7)).filter(lambda w: w[0] < w[1]),
    variant=st.sampled_from([("kql", False, False, False), ("corrected", True, True, True), ("kql", False, True, False)]),
)
def test_property_any_window_from_partials_equals_direct(spark, events, rows, window, variant):
    mode, normalize, count_messages, dedupe = variant
    df = events(
        *[
            event(
                to=to, external=ext, owned=own, threats=thr, sender=snd, msg=f"m{mid}", tenant=ten,
                ts=datetime(2026, 3, 1 + d, h, tzinfo=timezone.utc), report=f"r{i}",
            )
            # A unique ReportId per row, as in real data: it settles which edit is the latest.
            for i, (to, ext, own, thr, snd, d, h, ten, mid) in enumerate(rows)
        ]
    )
    start, end = BASE + timedelta(days=window[0]), BASE + timedelta(days=window[1])
    direct = hunt_results(
        df.transform(quality.filter_canonical_window, partials.day_start(start), partials.day_start(end)),
        mode=mode, normalize_domains=normalize, count_messages=count_messages, dedupe_edits=dedupe,
        exclude_domains=["contoso.com"],
    )
    rolled = via_partials(df, start, end, mode, normalize, count_messages, dedupe, exclude=["contoso.com"])
    assert_df_equality(rolled, direct, ignore_row_order=True, ignore_nullable=True)


def test_as_day_refuses_a_window_that_is_not_day_aligned():
    import pytest

    assert partials.as_day(datetime(2026, 3, 1, tzinfo=timezone.utc)) == BASE
    with pytest.raises(ValueError, match="not midnight UTC"):
        partials.as_day(datetime(2026, 3, 1, 5, tzinfo=timezone.utc))


def test_day_ranges_merge_consecutive_days_only():
    d = date(2026, 3, 1)
    days = [d + timedelta(days=i) for i in (0, 1, 2, 5, 7, 8)] + [d]
    assert partials.day_ranges(days) == [
        (d, d + timedelta(days=3)),
        (d + timedelta(days=5), d + timedelta(days=6)),
        (d + timedelta(days=7), d + timedelta(days=9)),
    ]
    assert partials.day_ranges([]) == []
