"""The seeded sample lake: realistic MessageEvents built with Spark built-ins, any size, any seed.

Every random draw is a hash of (seed, row id, draw number), so the same seed gives the same table
whatever the partitioning or the number of executors.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from partner_hunt.core.landed import MESSAGE_EVENTS_CATEGORY
from partner_hunt.core.schema import DEFAULT_TENANT_ID

OWN_DOMAIN = "contoso.com"
_NAMES = (
    "fabrikam adventure-works northwind tailspin wingtip woodgrove litware proseware fourthcoffee "
    "alpineski lucernepublishing margiestravel relecloud treyresearch wideworldimporters blueyonder "
    "cohowinery graphicdesigninstitute humongousinsurance lamnahealthcare nodpublishers "
    "southridgevideo thephonecompany vanarsdel schoolofartdesign consolidatedmessenger "
    "cpandl fineartschool datum"
).split()
_TLDS = ("com", "net", "org", "io", "co.uk", "de", "fr", "com.au", "ca", "nl")
PARTNER_DOMAINS = tuple(f"{n}.{t}" for t in _TLDS for n in _NAMES)
THREATS = ("Phish", "Malware", "Spam", "Phish,Malware", "Spam,Phish")
# Partners whose accounts the demo treats as compromised: their inbound threat rate is high.
COMPROMISED = (3, 11, 42, 97)


def _uniform(seed: int, draw: int) -> Column:
    """A deterministic uniform [0, 1) per row, independent across draw numbers."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(draw), F.col("id")), F.lit(1_000_003)) / F.lit(1_000_003.0)


def _pick(values: tuple[str, ...], u: Column) -> Column:
    """values[floor(u * len)] as a Column (element_at is 1-based)."""
    index = (F.floor(u * F.lit(len(values))) + F.lit(1)).cast("int")
    return F.element_at(F.array(*[F.lit(v) for v in values]), index)


def _recipient(address: Column, display: Column) -> Column:
    return F.struct(
        address.alias("RecipientSmtpAddress"),
        display.alias("RecipientDisplayName"),
        F.lit("User").alias("RecipientType"),
        F.sha2(address, 256).substr(1, 36).alias("RecipientObjectId"),
    )


def generate_events(
    spark: SparkSession,
    rows: int,
    days: int = 30,
    seed: int = 42,
    tenants: int = 1,
    end: datetime | None = None,
) -> DataFrame:
    """Seeded MessageEvents in the typed Defender shape, ending at `end` (default: today 00:00 UTC).

    Traffic is skewed (a few partners carry most messages), about 1% of rows carry threats, a few
    partners are compromised, and the odd inputs the hunt must survive are sprinkled in: null and
    empty RecipientDetails, addresses without `@` or with two, upper-case and padded domains,
    a lone-space ThreatTypes, null flags, and re-emitted edits of the same TeamsMessageId.
    """
    end = end or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    u = [_uniform(seed, k) for k in range(16)]

    kind = u[0]  # < 0.55 outbound, < 0.85 inbound external, else internal
    is_outbound = kind < 0.55
    is_internal = kind >= 0.85
    # Cubing a uniform skews traffic towards the first partners, as real partner lists are.
    partner_idx = F.floor(F.pow(u[1], F.lit(3.0)) * F.lit(len(PARTNER_DOMAINS))).cast("int")
    partner = F.element_at(F.array(*[F.lit(d) for d in PARTNER_DOMAINS]), partner_idx + F.lit(1))
    odd = u[2]
    partner = (
        F.when(odd < 0.004, F.upper(partner))
        .when(odd < 0.006, F.concat(F.lit(" "), partner))
        .when(odd < 0.007, F.concat(partner, F.lit(".")))
        .otherwise(partner)
    )
    user = F.concat(F.lit("user"), (F.floor(u[3] * F.lit(500))).cast("string"))
    own_user = F.concat(F.lit("emp"), (F.floor(u[4] * F.lit(300))).cast("string"))
    partner_addr = F.concat(user, F.lit("@"), partner)
    own_addr = F.concat(own_user, F.lit("@"), F.lit(OWN_DOMAIN))
    bad_addr = u[5]
    partner_addr = (
        F.when(bad_addr < 0.002, user)
        .when(bad_addr < 0.003, F.concat(user, F.lit("@relay@"), partner))
        .when(bad_addr < 0.004, F.lit(""))
        .otherwise(partner_addr)
    )
    second_partner = F.concat(F.lit("ext"), F.floor(u[6] * F.lit(50)).cast("string"), F.lit("@"), partner)
    n_recipients = F.when(u[7] < 0.7, 1).when(u[7] < 0.92, 2).otherwise(3)

    outbound_recipients = F.when(n_recipients == 1, F.array(_recipient(partner_addr, user))).when(
        n_recipients == 2, F.array(_recipient(partner_addr, user), _recipient(own_addr, own_user))
    ).otherwise(
        F.array(_recipient(partner_addr, user), _recipient(second_partner, user), _recipient(own_addr, own_user))
    )
    # Inbound messages land on our users; group chats sometimes include other partners too,
    # which is what the published query (recipients' domains on the inbound side) picks up.
    inbound_recipients = F.when(u[7] < 0.85, F.array(_recipient(own_addr, own_user))).otherwise(
        F.array(_recipient(own_addr, own_user), _recipient(second_partner, user))
    )
    internal_recipients = F.array(_recipient(own_addr, own_user))
    recipients = F.when(is_outbound, outbound_recipients).when(is_internal, internal_recipients).otherwise(
        inbound_recipients
    )
    odd_recipients = u[8]
    recipient_type = (
        "array<struct<RecipientSmtpAddress:string,RecipientDisplayName:string,"
        "RecipientType:string,RecipientObjectId:string>>"
    )
    recipients = (
        F.when(odd_recipients < 0.002, F.lit(None).cast(recipient_type))
        .when(odd_recipients < 0.004, F.array().cast(recipient_type))
        .otherwise(recipients)
    )

    compromised = F.array_contains(F.array(*[F.lit(i) for i in COMPROMISED]), partner_idx)
    threat_rate = F.when(is_internal, 0.002).when(is_outbound, 0.001).when(compromised, 0.25).otherwise(0.006)
    threat = F.when(u[9] < threat_rate, _pick(THREATS, u[10])).when(u[9] > 0.9995, F.lit(" ")).otherwise(F.lit(""))

    flag_odd = u[11]
    external = F.when(flag_odd < 0.001, F.lit(None).cast("boolean")).otherwise(~is_internal)
    owned = F.when((flag_odd >= 0.001) & (flag_odd < 0.002), F.lit(None).cast("boolean")).otherwise(
        is_outbound | is_internal
    )
    seconds = F.floor(u[12] * F.lit(days * 86_400)).cast("long")
    timestamp = F.timestamp_seconds(F.lit(int(start.timestamp())) + seconds)
    # About 0.5% of rows are a re-emitted edit of an earlier message: same id, later time.
    is_edit = u[13] < 0.005
    message_key = F.when(is_edit & (F.col("id") > 0), F.col("id") - 1).otherwise(F.col("id"))
    message_id = F.concat(F.lit("msg-"), F.lpad(F.hex(F.xxhash64(F.lit(seed), message_key)), 16, "0"))
    sender = F.when(is_outbound | is_internal, own_addr).otherwise(F.concat(user, F.lit("@"), partner))
    tenant = F.concat(F.lit("tenant-"), F.lpad(F.floor(u[14] * F.lit(tenants)).cast("string"), 2, "0"))

    columns = [
        timestamp.alias("Timestamp"),
        message_id.alias("TeamsMessageId"),
        sender.alias("SenderEmailAddress"),
        F.split(sender, "@")[0].alias("SenderDisplayName"),
        F.lit("User").alias("SenderType"),
        recipients.alias("RecipientDetails"),
        owned.alias("IsOwnedThread"),
        external.alias("IsExternalThread"),
        F.concat(F.lit("19:"), F.floor(u[15] * F.lit(5000)).cast("string"), F.lit("@thread.v2")).alias("ThreadId"),
        F.lit("Chat").alias("ThreadSubtype"),
        threat.alias("ThreatTypes"),
        F.when(threat.isin("", " "), "Delivered").otherwise("Blocked").alias("DeliveryAction"),
        F.concat(F.lit("rep-"), F.col("id").cast("string")).alias("ReportId"),
        F.when(is_edit, timestamp).alias("LastEditedTime"),
    ]
    if tenants > 1:
        columns.append(tenant.alias("TenantId"))
    return spark.range(0, rows, 1, numPartitions=max(2, rows // 500_000)).select(*columns)


def in_arrival_order(events_df: DataFrame, days: int) -> DataFrame:
    """Lay the events out as they land in a real lake: in time order, about one file per day.

    Each file then covers a short stretch of Timestamp, so Delta's file statistics let a per-day
    backfill or an incremental run read only the files of its days instead of the whole table.
    """
    return events_df.repartitionByRange(max(1, min(days, 366)), "Timestamp")


def export_lines(events_df: DataFrame, category: str = MESSAGE_EVENTS_CATEGORY) -> DataFrame:
    """Sample records as Defender's Streaming API writes them to storage: `Blob` (the hour's blob,
    relative to the container) and `Line` (one envelope, JSON).

    Needs `generate_events` rows, or a sample signal table's (`sample_signals`, with its
    `category`). The blob path and the times are UTC whatever the session zone; an empty
    `ThreatTypes` is null, as the export writes it.
    """
    tenant = F.col("TenantId") if "TenantId" in events_df.columns else F.lit(DEFAULT_TENANT_ID)
    seconds = F.unix_seconds(F.col("Timestamp"))
    day = F.date_from_unix_date(F.floor(seconds / F.lit(86_400)).cast("int"))
    hour = F.floor(F.pmod(seconds, F.lit(86_400)) / F.lit(3_600)).cast("int")
    threats = [F.when(F.col("ThreatTypes") != F.lit(""), F.col("ThreatTypes")).alias("ThreatTypes")] if "ThreatTypes" in events_df.columns else []
    properties = F.struct(*[F.col(c) for c in events_df.columns if c not in ("TenantId", "ThreatTypes")], *threats)
    envelope = F.struct(
        F.col("Timestamp").alias("time"),
        tenant.alias("tenantId"),
        F.lit("Publish").alias("operationName"),
        F.lit(category).alias("category"),
        F.col("Timestamp").alias("_TimeReceivedBySvc"),
        properties.alias("properties"),
        F.lit("DefaultTenant").alias("Tenant"),
    )
    blob = F.format_string(
        "tenantId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json", tenant, F.year(day), F.month(day), F.dayofmonth(day), hour
    )
    options = {"timeZone": "UTC", "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"}
    return events_df.select(blob.alias("Blob"), F.to_json(envelope, options).alias("Line"))
