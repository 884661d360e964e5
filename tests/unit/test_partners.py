"""The partners table: history per (tenant, domain) from the daily partials, never a rescan."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from partner_hunt.core import hunt, partials, partners
from partner_hunt.core.options import CountOptions
from partner_hunt.core.tables import PARTIALS_DDL, PARTNERS_DDL, columns
from tests.conftest import event

VARIANT = CountOptions("kql", False, False, False).variant
D = date(2026, 3, 1)
# The transform's columns: the table's without the run's own two.
HISTORY_DDL = ", ".join(PARTNERS_DDL.split(", ")[:-2])
assert columns(HISTORY_DDL) == tuple(c for c in columns(PARTNERS_DDL) if c not in ("RunId", "ComputedAt"))


def partial(day, domain, out, threats, tenant="t1", variant=VARIANT):
    """One partials row (a marker when `domain` is None)."""
    return (tenant if domain else None, day, variant, "kql", domain, out, threats, None, None, None, None, None, None, None)


def day(n):
    return D + timedelta(days=n)


def test_history_baseline_window_and_new_partner(spark):
    partials_df = spark.createDataFrame(
        [
            *[partial(day(n), None, 0, 0) for n in range(6)],
            # fabrikam: a steady partner, threats jump in the window (days 4-5).
            partial(day(0), "fabrikam.com", 10, 1),
            partial(day(2), "fabrikam.com", 10, 0),
            partial(day(4), "fabrikam.com", 5, 3),
            # litware: first outbound contact on the last day; inbound threats earlier.
            partial(day(1), "litware.com", 0, 2),
            partial(day(5), "litware.com", 4, 0),
            # Another variant's rows never mix in.
            partial(day(5), "other.com", 9, 9, variant="corrected;x"),
        ],
        PARTIALS_DDL,
    )
    actual = partners.partner_history(partials_df, VARIANT, (day(4), day(6)), baseline_days=3)
    # Baseline: days 1..3.
    expected = spark.createDataFrame(
        [
            ("t1", "fabrikam.com", VARIANT, "kql", day(0), day(4), day(0), day(4), 3, 25, 4,
             10, 0, 0.0, 5, 3, 0.6, 0.6, False, day(0), day(1), day(4), day(6)),
            ("t1", "litware.com", VARIANT, "kql", day(5), day(5), day(1), day(1), 2, 4, 2,
             0, 2, None, 4, 0, 0.0, None, True, day(0), day(1), day(4), day(6)),
        ],
        HISTORY_DDL,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert [r["Domain"] for r in partners.new_partners(actual).collect()] == ["litware.com"]
    assert [r["Domain"] for r in partners.rate_jumps(actual, min_change=0.5).collect()] == ["fabrikam.com"]


def test_no_partner_is_new_when_the_history_starts_in_the_window(spark):
    partials_df = spark.createDataFrame(
        [partial(day(4), None, 0, 0), partial(day(4), "fabrikam.com", 3, 0)], PARTIALS_DDL
    )
    row = partners.partner_history(partials_df, VARIANT, (day(4), day(5)), baseline_days=90).collect()[0]
    assert (row["NewPartner"], row["FirstSeenOutbound"], row["HistoryStart"]) == (False, day(4), day(4))


# --- property: partners rows == a direct computation from raw events, counted day by day --------

DOMAINS = ("a.com", "b.org", "c.net")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
raw_event = st.tuples(
    st.integers(0, 3),  # day
    st.sampled_from(DOMAINS),
    st.booleans(),  # owned (outbound) or inbound
    st.booleans(),  # carries a threat
    st.sampled_from(("t1", "t2")),
)


def expected_rows(spark, events, days, window, baseline_days):
    """Per day, `hunt.count_domains(by_day=True)` on that day's events alone; then history in Python."""
    start, end = window
    seen: dict[tuple[str, str], list[tuple[date, int, int]]] = {}
    for d in days:
        rows = [e for e in events if e[1].date() == d]
        if not rows:
            continue
        for r in hunt.count_domains(spark.createDataFrame(rows, _canonical_ddl()), by_day=True).collect():
            if r["Domain"] is not None:
                seen.setdefault((r["TenantId"], r["Domain"]), []).append(
                    (r["Day"], r["OutboundTeamsMessages"], r["IncomingTeamsMessagesWithThreats"])
                )
    base_start = start - timedelta(days=baseline_days)
    out = {}
    for key, per_day in seen.items():
        outs = [d for d, o, _ in per_day if o > 0]
        ins = [d for d, _, i in per_day if i > 0]
        if not outs and not ins:
            continue
        win = [(o, i) for d, o, i in per_day if start <= d < end]
        base = [(o, i) for d, o, i in per_day if base_start <= d < start]
        out[key] = (
            min(outs, default=None), max(outs, default=None), min(ins, default=None), max(ins, default=None),
            len({d for d, o, i in per_day if o or i}),
            sum(o for _, o, _ in per_day), sum(i for _, _, i in per_day),
            sum(o for o, _ in base), sum(i for _, i in base), sum(o for o, _ in win), sum(i for _, i in win),
            bool(outs) and start <= min(outs) < end and min(days) < start,
        )
    return out


def _canonical_ddl():
    from tests.conftest import CANONICAL_DDL

    return CANONICAL_DDL


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.lists(raw_event, min_size=1, max_size=12), newcomer=st.booleans())
def test_partners_equal_a_direct_computation_from_raw_events(spark, raw, newcomer):
    events = [
        event(
            to=[f"x@{dom}"], owned=owned, threats="Phish" if threat else "", msg=f"m{i}", tenant=tenant,
            ts=T0 + timedelta(days=d, minutes=i),
        )
        for i, (d, dom, owned, threat, tenant) in enumerate(raw)
    ]
    if newcomer:
        # A partner nobody wrote to before, first contacted on the last day.
        events.append(event(to=["y@newpartner.io"], owned=True, msg="new", ts=T0 + timedelta(days=3)))
    days = [D + timedelta(days=n) for n in range(4)]
    window = (days[3], days[3] + timedelta(days=1))
    # The partials, computed as backfill does: one count_domains(by_day=True) pass plus markers.
    counts_df = hunt.count_domains(spark.createDataFrame(events, _canonical_ddl()), by_day=True)
    partials_df = counts_df.transform(partials.with_markers, VARIANT, "kql", days).withColumns(
        {c: F.lit(None).cast(t) for c, t in (("Source", "string"), ("SourceVersion", "long"), ("RunId", "string"), ("ComputedAt", "timestamp"))}
    )
    actual = {
        (r["TenantId"], r["Domain"]): (
            r["FirstSeenOutbound"], r["LastSeenOutbound"], r["FirstSeenInbound"], r["LastSeenInbound"], r["ActiveDays"],
            r["OutboundTeamsMessages"], r["IncomingTeamsMessagesWithThreats"], r["BaselineOutbound"],
            r["BaselineThreats"], r["WindowOutbound"], r["WindowThreats"], r["NewPartner"],
        )
        for r in partners.partner_history(partials_df, VARIANT, window, baseline_days=2).collect()
    }
    assert actual == expected_rows(spark, events, days, window, baseline_days=2)
    if newcomer:
        assert actual[("t1", "newpartner.io")][-1] is True
