"""Partner signals per day of the message, and the partner risk table, from hand-built tables.

Expected rows follow docs/partner-risk.md: a signal is credited to the day its message was sent and
to its sender's domain; a Teams click to the newest message that carried its URL before it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.config import RISK_WEIGHTS
from partner_hunt.core import partner_signals, risk

T = "t1"
CANONICAL_DDL = (
    "TenantId string, TeamsMessageId string, Timestamp timestamp, SenderEmailAddress string, "
    "IsExternalThread boolean, IsOwnedThread boolean, ThreatTypes string"
)
POST_DDL = "TenantId string, Timestamp timestamp, TeamsMessageId string, ActionType string, ThreatTypes string"
URLS_DDL = "TenantId string, Timestamp timestamp, TeamsMessageId string, Url string, UrlDomain string"
CLICKS_DDL = (
    "TenantId string, Timestamp timestamp, Url string, Workload string, ActionType string, "
    "IsClickedThrough boolean, AccountUpn string, ReportId string"
)
DAILY_DDL = (
    "TenantId string, Day date, Domain string, "
    + "".join(f"{c} long, " for c in partner_signals.COUNTS)
    + "RemovedByAction map<string,bigint>, RemovedByThreat map<string,bigint>, UrlDomains array<string>"
)


def at(day, hour, minute=0):
    return datetime(2026, 3, day, hour, minute, tzinfo=timezone.utc)


def message(mid, when, sender, threats=None, external=True, owned=False):
    return (T, mid, when, sender, external, owned, threats)


def tables(spark):
    messages = spark.createDataFrame(
        [
            # partner.com: m1 clean at delivery and purged two days later; m2 a threat at delivery.
            message("m1", at(1, 9), "a@partner.com"),
            message("m2", at(1, 10), "b@partner.com", "Malware"),
            # other.org: m3 clean, carried a URL that our users clicked; edited an hour later.
            message("m3", at(1, 11), "c@other.org"),
            message("m3", at(1, 12), "c@other.org"),
            # partner.com the next day: removed by hand, with no threat named; carried a URL.
            message("m4", at(2, 8), "a@partner.com"),
            # purged.net: its only message was clean at delivery, and purged as malware the next day.
            message("m7", at(1, 15), "z@purged.net"),
            # Neither inbound: our own message out, and one whose external flag is unknown.
            message("m5", at(1, 9), "me@contoso.com", owned=True),
            message("m6", at(1, 9), "d@partner.com", "Phish", external=None),
        ],
        CANONICAL_DDL,
    )
    post = spark.createDataFrame(
        [
            (T, at(3, 6), "m1", "Phish ZAP", "Phish"),
            (T, at(1, 10, 5), "m2", "Malware ZAP", "Malware"),
            (T, at(2, 9), "m4", "Manual remediation", None),
            (T, at(2, 3), "m7", "Malware ZAP", "Malware"),
            # About messages that are not inbound (our own, and one with no external flag): left out.
            (T, at(1, 12), "m5", "Phish ZAP", "Phish"),
            (T, at(1, 12), "m6", "Manual remediation", None),
        ],
        POST_DDL,
    )
    urls = spark.createDataFrame(
        [
            (T, at(1, 11), "m3", "http://x.example/a", "x.example"),
            (T, at(2, 8), "m4", "https://y.example/b", None),
            (T, at(1, 9), "m5", "https://own.example/c", "own.example"),
        ],
        URLS_DDL,
    )
    clicks = spark.createDataFrame(
        [
            (T, at(2, 7), "http://x.example/a", "Teams", "ClickAllowed", True, "u1@contoso.com", "c1"),
            (T, at(2, 7, 1), "http://x.example/a", "Teams", "ClickBlocked", False, "u2@contoso.com", "c2"),
            # Not credited: an email click, a click before any message carried its URL, a URL no message carried.
            (T, at(2, 7), "http://x.example/a", "Email", "ClickAllowed", True, "u3@contoso.com", "c3"),
            (T, at(1, 10, 30), "http://x.example/a", "Teams", "ClickAllowed", False, "u4@contoso.com", "c4"),
            (T, at(2, 7), "http://z.example/", "Teams", "ClickAllowed", True, "u5@contoso.com", "c5"),
        ],
        CLICKS_DDL,
    )
    return messages, post, urls, clicks


def comparable(df):
    """Maps as sorted entry lists: chispa sorts rows by every column, and maps cannot be sorted."""
    return df.withColumns({c: F.array_sort(F.map_entries(c)) for c in ("RemovedByAction", "RemovedByThreat")})


def daily(spark):
    messages, post, urls, clicks = tables(spark)
    inbound = partner_signals.inbound_messages(messages, normalize=False)
    return partner_signals.daily_counts(inbound, post, urls, clicks)


def test_signals_are_credited_to_the_message_day_and_sender_domain(spark):
    expected = spark.createDataFrame(
        [
            (T, date(2026, 3, 1), "partner.com", 2, 1, 2, 1, 2, 0, 0, 0, 0, 0, {"Malware ZAP": 1, "Phish ZAP": 1}, {"Malware": 1, "Phish": 1}, []),
            (T, date(2026, 3, 1), "other.org", 1, 0, 0, 0, 0, 1, 2, 1, 1, 1, {}, {}, ["x.example"]),
            (T, date(2026, 3, 2), "partner.com", 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, {"Manual remediation": 1}, {}, ["y.example"]),
            (T, date(2026, 3, 1), "purged.net", 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, {"Malware ZAP": 1}, {"Malware": 1}, []),
        ],
        DAILY_DDL,
    )
    assert_df_equality(comparable(daily(spark)), comparable(expected), ignore_row_order=True, ignore_nullable=True)


def test_without_signal_tables_only_the_messages_are_counted(spark):
    messages, *_ = tables(spark)
    got = partner_signals.daily_counts(partner_signals.inbound_messages(messages, normalize=False), None, None, None)
    expected = spark.createDataFrame(
        [
            (T, date(2026, 3, 1), "partner.com", 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, {}, {}, []),
            (T, date(2026, 3, 1), "other.org", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, {}, []),
            (T, date(2026, 3, 2), "partner.com", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, {}, []),
            (T, date(2026, 3, 1), "purged.net", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, {}, []),
        ],
        DAILY_DDL,
    )
    assert_df_equality(comparable(got), comparable(expected), ignore_row_order=True, ignore_nullable=True)


PARTNERS_DDL = (
    "TenantId string, Domain string, OutboundTeamsMessages long, IncomingTeamsMessagesWithThreats long, "
    "WindowOutbound long, WindowThreats long, BaselineThreatRate double, WindowThreatRate double, "
    "ThreatRateChange double, NewPartner boolean, FirstSeenOutbound date, FirstSeenInbound date"
)


def test_risk_score_is_the_sum_of_its_weighted_parts(spark):
    signal_df = daily(spark)
    partners_df = spark.createDataFrame(
        [
            (T, "partner.com", 40, 2, 20, 2, 0.05, 0.1, 0.05, False, date(2026, 1, 5), date(2026, 2, 1)),
            # A partner whose rate fell: that part is never below zero.
            (T, "quiet.net", 10, 1, 5, 0, 0.2, 0.0, -0.2, False, date(2026, 1, 9), None),
        ],
        PARTNERS_DDL,
    )
    got = risk.partner_risk(partners_df, signal_df, (date(2026, 3, 1), date(2026, 3, 3)), RISK_WEIGHTS).select(
        "TenantId", "Domain", "FirstContact", "WindowThreatsAtDelivery", "WindowThreatsAfterDelivery",
        "WindowClicksAllowed", "WindowClicksThrough", "WindowClicksBlocked", "WindowUrlDomains",
        "ScoreThreatsAtDelivery", "ScoreThreatsAfterDelivery", "ScoreClicksAllowed", "ScoreClicksThrough",
        "ScoreClicksBlocked", "ScoreThreatRateChange", "RiskScore",
    )
    expected = spark.createDataFrame(
        [
            # 1 x 1 at delivery + 2 x 1 after + 10 x 0.05 rate rise.
            (T, "partner.com", date(2026, 1, 5), 1, 1, 0, 0, 0, 1, 1.0, 2.0, 0.0, 0.0, 0.0, 0.5, 3.5),
            # No published row at all: 3 x 1 allowed + 5 x 1 through + 1 x 1 blocked.
            (T, "other.org", date(2026, 3, 1), 0, 0, 1, 1, 1, 1, 0.0, 0.0, 3.0, 5.0, 1.0, 0.0, 9.0),
            (T, "quiet.net", date(2026, 1, 9), 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
            # Never a threat at delivery, so never in the published counts: 2 x 1 found after.
            (T, "purged.net", date(2026, 3, 1), 0, 1, 0, 0, 0, 0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0),
        ],
        "TenantId string, Domain string, FirstContact date, WindowThreatsAtDelivery long, WindowThreatsAfterDelivery long, "
        "WindowClicksAllowed long, WindowClicksThrough long, WindowClicksBlocked long, WindowUrlDomains long, "
        "ScoreThreatsAtDelivery double, ScoreThreatsAfterDelivery double, ScoreClicksAllowed double, "
        "ScoreClicksThrough double, ScoreClicksBlocked double, ScoreThreatRateChange double, RiskScore double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, allow_nan_equality=True)
