"""Property: messy MessageEvents never crash the job, every row is used or quarantined, and the
valid rows give the same hunt result as the same data written in the documented, tidy schema.

Each example draws a few records as a model (the intended values, or junk), renders them in one
messy source shape (JSON strings, integer or string flags, threat arrays) and, for the valid
ones, in the tidy typed schema. The model decides validity by itself, so the test also checks
which rows the contract quarantines and why.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from partner_hunt.core import schema
from partner_hunt.core.schema import Requirements
from tests.conftest import hunt_results

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
JUNK = object()  # a value no accepted shape can read

ODD_ADDRESSES = [
    "a@partner.com", "b@Partner.COM", "c@partner.com.", " d@partner.com ", "a@b@c.com", "@x.com",
    "user@", "no-at-sign", "", "e@bücher.de", "f@other.org", "g@x.com",
]
addresses = st.one_of(st.none(), st.sampled_from(ODD_ADDRESSES), st.text(alphabet="ab@. X", max_size=6))

# recipients: None (JSON null), a list of addresses (None = an element with no address),
# ("bag", address) for a single JSON object, or JUNK.
recipient_values = st.one_of(
    st.none(),
    st.lists(addresses, max_size=3),
    st.tuples(st.just("bag"), addresses),
    st.just(JUNK),
)
flag_values = st.one_of(st.booleans(), st.none(), st.just(JUNK))
threat_values = st.one_of(
    st.none(), st.sampled_from(["", " ", "Phish", "Malware,Spam"]), st.lists(st.sampled_from(["", "Phish"]), max_size=2)
)
time_values = st.one_of(st.integers(min_value=0, max_value=47), st.none(), st.just(JUNK))

records = st.lists(
    st.fixed_dictionaries(
        {
            "hour": time_values,
            "external": flag_values,
            "owned": flag_values,
            "recipients": recipient_values,
            "threats": threat_values,
            "sender": addresses,
        }
    ),
    min_size=1,
    max_size=8,
)
shapes = st.fixed_dictionaries(
    {
        "time": st.sampled_from(["iso_z", "naive", "offset"]),
        "flags": st.sampled_from(["int", "string"]),
        "recipients": st.sampled_from(["json", "maps"]),
        "threats": st.sampled_from(["string", "array", "json"]),
    }
)
options = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["kql", "corrected"]),
        "normalize_domains": st.booleans(),
        "count_messages": st.booleans(),
    }
)


def _time_text(hour, shape):
    if hour is None:
        return None
    if hour is JUNK:
        return "not a time"
    instant = T0 + timedelta(hours=hour)
    if shape == "iso_z":
        return instant.strftime("%Y-%m-%dT%H:%M:%S.1234567Z")
    if shape == "naive":
        return instant.strftime("%Y-%m-%d %H:%M:%S")
    return (instant + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")


def _flag(value, shape):
    if value is None:
        return None
    if value is JUNK:
        return 2 if shape == "int" else "yes"
    return int(value) if shape == "int" else ["false", "TRUE"][value]


def _recipients_json(value):
    if value is None:
        return None
    if value is JUNK:
        return '[{"RecipientSmtpAddress": "x@y.com"'
    if isinstance(value, tuple):
        return json.dumps({"RecipientSmtpAddress": value[1], "RecipientType": "To"})
    return json.dumps([{"RecipientSmtpAddress": a} if a is not None else {"RecipientType": "To"} for a in value])


def _recipients_maps(value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return [{"RecipientSmtpAddress": value[1], "RecipientType": "To"}]
    return [{"RecipientSmtpAddress": a} if a is not None else {"RecipientType": "To"} for a in value]


def _threats(value, shape):
    items = value if isinstance(value, list) else None
    if shape == "array":
        return items if items is not None else (None if value is None else [value])
    if shape == "json":
        return json.dumps(items) if items is not None else value
    return ",".join(items) if items is not None else value


def _expected_reason(record, shapes):
    if record["hour"] is None or record["hour"] is JUNK:
        return schema.BAD_TIMESTAMP
    if record["external"] is JUNK or record["owned"] is JUNK:
        return schema.BAD_FLAG
    if record["recipients"] is JUNK and shapes["recipients"] == "json":
        return schema.BAD_RECIPIENTS
    return None


def _tidy_recipients(value):
    """The canonical addresses of the same recipients (a bag is address + one keyless row)."""
    if value is None or value is JUNK:
        return None
    if isinstance(value, tuple):
        return [value[1], None]
    return list(value)


def _as_map_shape(value):
    if value is JUNK:
        return None
    return [value[1]] if isinstance(value, tuple) else value


def _tidy_threats(value, shape):
    """The documented string column: an exported array counts as a threat if any element is one."""
    if isinstance(value, list) and shape != "string":
        return "Phish" if any(value) else ""
    return _threats(value, shape)


MESSY_DDL = {
    "time": "string",
    "flags": {"int": "int", "string": "string"},
    "recipients": {"json": "string", "maps": "array<map<string,string>>"},
    "threats": {"string": "string", "array": "array<string>", "json": "string"},
}
TIDY_DDL = (
    "TenantId string, Timestamp timestamp, TeamsMessageId string, ReportId string, SenderEmailAddress string, "
    "RecipientAddresses array<string>, IsExternalThread boolean, "
    "IsOwnedThread boolean, ThreatTypes string, EditTime timestamp"
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=records, shape=shapes, opts=options)
def test_messy_sources_conserve_rows_and_match_the_tidy_hunt(spark, rows, shape, opts):
    if shape["recipients"] == "maps":
        # array<map> has no unparseable form, and no lone object: junk becomes a null array and
        # a "bag" a one-recipient array there.
        rows = [{**r, "recipients": _as_map_shape(r["recipients"])} for r in rows]
    render_recipients = _recipients_json if shape["recipients"] == "json" else _recipients_maps
    messy_rows = [
        (
            _time_text(r["hour"], shape["time"]),
            f"m{i}",
            f"r{i}",
            r["sender"],
            render_recipients(r["recipients"]),
            _flag(r["external"], shape["flags"]),
            _flag(r["owned"], shape["flags"]),
            _threats(r["threats"], shape["threats"]),
            "ignored extra column",
        )
        for i, r in enumerate(rows)
    ]
    flag_type = MESSY_DDL["flags"][shape["flags"]]
    messy_df = spark.createDataFrame(
        messy_rows,
        f"Timestamp string, TeamsMessageId string, ReportId string, SenderEmailAddress string, "
        f"RecipientDetails {MESSY_DDL['recipients'][shape['recipients']]}, IsExternalThread {flag_type}, "
        f"IsOwnedThread {flag_type}, ThreatTypes {MESSY_DDL['threats'][shape['threats']]}, Extra string",
    )
    req = Requirements(sender=opts["mode"] == "corrected", message_id=opts["count_messages"])
    schema.check_contract(messy_df.schema, "messy")
    canonical_df = schema.to_canonical(messy_df, req).cache()

    # Conservation, and the reason each row is quarantined for.
    reasons = {row["ReportId"]: row["QuarantineReason"] for row in canonical_df.select("ReportId", "QuarantineReason").collect()}
    expected_reasons = {f"r{i}": _expected_reason(r, shape) for i, r in enumerate(rows)}
    assert reasons == expected_reasons
    used = canonical_df.transform(schema.drop_quarantined)
    bad = canonical_df.transform(schema.filter_bad_rows)

    tidy_rows = [
        (
            schema.DEFAULT_TENANT_ID,
            T0 + timedelta(hours=r["hour"]),
            f"m{i}",
            f"r{i}",
            r["sender"],
            _tidy_recipients(r["recipients"]),
            r["external"],
            r["owned"],
            _tidy_threats(r["threats"], shape["threats"]),
            T0 + timedelta(hours=r["hour"]),
        )
        for i, r in enumerate(rows)
        if expected_reasons[f"r{i}"] is None
    ]
    tidy_df = spark.createDataFrame(tidy_rows, TIDY_DDL)
    both = (
        hunt_results(canonical_df, **opts).withColumn("side", F.lit("messy"))
        .unionByName(hunt_results(tidy_df, **opts).withColumn("side", F.lit("tidy")))
        .unionByName(
            # One extra row carries the conservation counts, so that one action checks everything.
            used.groupBy().count().crossJoin(bad.groupBy().count().withColumnRenamed("count", "bad"))
            .select(
                F.lit("conservation").alias("TenantId"), F.lit("").alias("SenderFromDomain"),
                F.col("count").alias("OutboundTeamsMessages"), F.col("bad").alias("IncomingTeamsMessagesWithThreats"),
                F.lit(None).cast("double").alias("Bad_Traffic_Percentage"), F.lit("count").alias("side"),
            )
        )
        .collect()
    )
    canonical_df.unpersist()
    counts = [r for r in both if r["side"] == "count"][0]
    assert counts["OutboundTeamsMessages"] + counts["IncomingTeamsMessagesWithThreats"] == len(rows)
    messy = sorted(tuple(r)[:-1] for r in both if r["side"] == "messy")
    tidy = sorted(tuple(r)[:-1] for r in both if r["side"] == "tidy")
    assert messy == tidy
