"""Alerts: results rows that cross a configured threshold, with rule and MITRE metadata.

Three rules, each off when its threshold is null or 0:

- `volume`: at least `min_inbound_threats` inbound threats;
- `ratio`:  `Bad_Traffic_Percentage >= min_ratio`, with at least `ratio_min_inbound` threats so that
  1 threat against 1 outbound message does not page anyone;
- `spike`:  the window's daily threat rate is at least `spike_factor` times the domain's own daily
  rate over the days before the window (from the daily partials; a domain with no earlier threats
  has a baseline of 0, so its first `spike_min_inbound` threats are a spike);
- `risk`:   the partner's `RiskScore` in the partner risk table is at least `risk.alert_min_score`
  (only where the Teams signal tables are there: docs/partner-risk.md).

The alert id is a hash of (tenant, window, domain, mode), so raising the same alert again updates
it instead of adding a second one. An alert of a window that a later run of the same window no
longer raises is withdrawn (`Status` Resolved, see `withdrawal`), and raised again it is `New`
again. `to_ocsf` shapes alert rows as OCSF 1.3 Detection Findings (class 2004) for a SIEM. Every
function here is a pure transform.
"""

from __future__ import annotations

import operator
from datetime import date, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from partner_hunt import MITRE_TACTIC, MITRE_TECHNIQUE, RULE_ID, RULE_NAME, __version__
from partner_hunt.core.partials import filter_counts
from partner_hunt.core.tables import ALERT_COLUMNS

# OCSF severity_id -> name (https://schema.ocsf.io/1.3.0/classes/detection_finding).
SEVERITY_LOW, SEVERITY_MEDIUM, SEVERITY_HIGH = 2, 3, 4
SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
TACTIC_UID, TACTIC_NAME = "TA0001", "Initial Access"
TECHNIQUE_NAME = "Phishing"
OCSF_VERSION = "1.3.0"

# Kept from the first time an alert was raised when it is raised again.
PRESERVED_ON_UPDATE = ("FirstRaisedAt",)

# The alert's `Status`, named as OCSF 1.3.0 detection_finding `status` (status_id 1 and 4): raised
# by the latest run of its window, or withdrawn by it. An alert stored before the column existed
# (null) was raised and never withdrawn, so it reads as New.
STATUS_NEW, STATUS_RESOLVED = "New", "Resolved"
OCSF_STATUS_IDS = {"New": 1, "In Progress": 2, "Suppressed": 3, "Resolved": 4, "Other": 99}
# OCSF detection_finding activity_id -> name; type_uid = class_uid * 100 + activity_id.
ACTIVITY_CREATE, ACTIVITY_UPDATE, ACTIVITY_CLOSE = 1, 2, 3
ACTIVITY_NAMES = {1: "Create", 2: "Update", 3: "Close"}


def covered_days(partials_df: DataFrame, variant_key: str, start: date, end: date) -> DataFrame:
    """One row, `Days`: how many days of `[start, end)` the partials hold for this variant.

    Needs the partials table's `Variant`, `Day`, `Domain`: a computed day has a marker row with a
    null `Domain`, so a day with no traffic still counts as known (a zero baseline, not a gap).
    """
    return partials_df.filter(
        (F.col("Variant") == F.lit(variant_key))
        & F.col("Domain").isNull()
        & (F.col("Day") >= F.lit(start))
        & (F.col("Day") < F.lit(end))
    ).agg(F.count_distinct("Day").cast("long").alias("Days"))


def baseline_rates(partials_df: DataFrame, variant_key: str, start: date, end: date, days: int) -> DataFrame:
    """Per (TenantId, SenderFromDomain): `BaselineDailyThreats`, mean inbound threats a day over `days`.

    Needs the partials table's `TenantId`, `Day`, `Variant`, `Domain`, `IncomingTeamsMessagesWithThreats`.
    `days` is the number of covered days (see `covered_days`); domains absent from the partials
    are absent here and get a baseline of 0 in `with_baseline`.
    """
    return (
        partials_df.transform(filter_counts, variant_key, start, end)
        .groupBy("TenantId", F.col("Domain").alias("SenderFromDomain"))
        .agg((F.sum("IncomingTeamsMessagesWithThreats") / F.lit(float(days))).alias("BaselineDailyThreats"))
    )


def with_baseline(results_df: DataFrame, baseline_df: DataFrame | None) -> DataFrame:
    """Add `BaselineDailyThreats` (double): 0 for a domain new to the baseline, null with no baseline."""
    if baseline_df is None:
        return results_df.withColumn("BaselineDailyThreats", F.lit(None).cast("double"))
    joined = results_df.alias("r").join(
        F.broadcast(baseline_df).alias("b"), on=["TenantId", "SenderFromDomain"], how="left"
    )
    return joined.select(
        *[F.col(f"r.{c}") for c in results_df.columns],
        F.coalesce(F.col("b.BaselineDailyThreats"), F.lit(0.0)).alias("BaselineDailyThreats"),
    )


def _rule(name: str, condition: Column) -> Column:
    return F.when(condition, F.lit(name))


def with_reasons(
    results_df: DataFrame,
    *,
    min_inbound_threats: int = 10,
    min_ratio: float | None = None,
    ratio_min_inbound: int = 3,
    spike_factor: float | None = None,
    spike_min_inbound: int = 3,
    window_days: float | None = None,
    risk_min_score: float | None = None,
) -> DataFrame:
    """Add `Reasons`, the names of the rules a row crosses (empty when none).

    Needs the results' count and ratio columns, and `BaselineDailyThreats` for the spike rule;
    the spike rule needs `window_days` (the window's length in days) as well, the risk rule
    `RiskScore` (rows without one never cross it).
    """
    inbound = F.col("IncomingTeamsMessagesWithThreats")
    ratio = F.col("Bad_Traffic_Percentage")
    baseline = F.col("BaselineDailyThreats")
    rules = []
    if min_inbound_threats:
        rules.append(_rule("volume", inbound >= F.lit(min_inbound_threats)))
    if min_ratio is not None:
        rules.append(_rule("ratio", (ratio >= F.lit(min_ratio)) & (inbound >= F.lit(ratio_min_inbound))))
    if spike_factor is not None and window_days:
        daily = inbound / F.lit(float(window_days))
        spike = (
            baseline.isNotNull()
            & (inbound >= F.lit(spike_min_inbound))
            & (daily > baseline)
            & (daily >= baseline * F.lit(spike_factor))
        )
        rules.append(_rule("spike", spike))
    if risk_min_score is not None and "RiskScore" in results_df.columns:
        rules.append(_rule("risk", F.coalesce(F.col("RiskScore") >= F.lit(float(risk_min_score)), F.lit(False))))
    reasons = F.filter(F.array(*rules), lambda r: r.isNotNull()) if rules else F.array().cast("array<string>")
    return results_df.withColumn("Reasons", reasons)


def severity_id(reasons: Column, inbound: Column, high_inbound_threats: int) -> Column:
    """OCSF severity_id: High at `high_inbound_threats` threats, Medium for 2+ rules, else Low."""
    high = inbound >= F.lit(high_inbound_threats) if high_inbound_threats else F.lit(False)
    return (
        F.when(high, F.lit(SEVERITY_HIGH))
        .when(F.size(reasons) >= 2, F.lit(SEVERITY_MEDIUM))
        .otherwise(F.lit(SEVERITY_LOW))
    )


def alert_id(tenant: Column, window_start: Column, window_end: Column, domain: Column, mode: Column) -> Column:
    """A stable id for (tenant, window, domain, mode): raising the same alert again finds it."""

    def bound(col: Column) -> Column:
        # An open bound is part of the window's identity too.
        return F.coalesce(F.unix_micros(col).cast("string"), F.lit("open"))

    # \u001f (unit separator) cannot occur in a domain or tenant id, so fields cannot run together.
    key = F.concat_ws("\u001f", tenant, bound(window_start), bound(window_end), domain, mode)
    return F.substring(F.sha2(key, 256), 1, 32)


def build_alerts(
    results_df: DataFrame,
    *,
    raised_at: datetime,
    run_id: str,
    baseline_df: DataFrame | None = None,
    window_days: float | None = None,
    min_inbound_threats: int = 10,
    min_ratio: float | None = None,
    ratio_min_inbound: int = 3,
    spike_factor: float | None = None,
    spike_min_inbound: int = 3,
    high_inbound_threats: int = 50,
    risk_df: DataFrame | None = None,
    risk_min_score: float | None = None,
) -> DataFrame:
    """Results rows crossing a threshold, as alert rows (`ALERT_COLUMNS`).

    Needs the results table's columns (`tables.RESULT_COLUMNS`, `WindowStart`, `WindowEnd`, `Mode`).
    `baseline_df` is `baseline_rates` output, or None when there are no daily partials; `risk_df`
    the partners' `RiskScore` (`TenantId`, `Domain`, `RiskScore`: `risk.partner_risk`), or None.
    """
    raised = F.lit(raised_at).cast("timestamp")
    if risk_df is not None:
        scores = risk_df.select("TenantId", F.col("Domain").alias("SenderFromDomain"), "RiskScore")
        results_df = results_df.join(scores, on=["TenantId", "SenderFromDomain"], how="left")
    flagged_df = (
        results_df.transform(with_baseline, baseline_df)
        .transform(
            with_reasons,
            min_inbound_threats=min_inbound_threats,
            min_ratio=min_ratio,
            ratio_min_inbound=ratio_min_inbound,
            spike_factor=spike_factor,
            spike_min_inbound=spike_min_inbound,
            window_days=window_days,
            risk_min_score=risk_min_score,
        )
        .filter(F.size("Reasons") > 0)
    )
    severity = severity_id(F.col("Reasons"), F.col("IncomingTeamsMessagesWithThreats"), high_inbound_threats)
    severity_name = F.element_at(
        F.create_map(*[x for k, v in SEVERITY_NAMES.items() for x in (F.lit(k), F.lit(v))]), severity
    )
    return flagged_df.select(
        alert_id(F.col("TenantId"), F.col("WindowStart"), F.col("WindowEnd"), F.col("SenderFromDomain"), F.col("Mode")).alias("AlertId"),
        # The columns carried through unchanged, in ALERT_COLUMNS order (TenantId .. Reasons).
        *ALERT_COLUMNS[1:11],
        severity.alias("SeverityId"),
        severity_name.alias("Severity"),
        F.lit(RULE_ID).alias("RuleId"),
        F.lit(RULE_NAME).alias("RuleName"),
        F.lit(MITRE_TECHNIQUE).alias("MitreTechnique"),
        F.lit(MITRE_TACTIC).alias("MitreTactic"),
        raised.alias("FirstRaisedAt"),
        raised.alias("LastRaisedAt"),
        F.lit(run_id).alias("RunId"),
        F.lit(STATUS_NEW).alias("Status"),
        F.lit(None).cast("timestamp").alias("WithdrawnAt"),
        F.lit(None).cast("string").alias("WithdrawnByRunId"),
    )


def withdrawal(run_id: str, withdrawn_at: datetime) -> dict[str, object]:
    """The values an alert takes when run `run_id` of its window no longer raises it."""
    return {"Status": STATUS_RESOLVED, "WithdrawnAt": withdrawn_at, "WithdrawnByRunId": run_id}


def with_status(alerts_df: DataFrame) -> DataFrame:
    """`Status` with a null (an alert stored before the column existed) read as New. Needs `Status`."""
    return alerts_df.withColumn("Status", F.coalesce(F.col("Status"), F.lit(STATUS_NEW)))


def changed(alerts_df: DataFrame, stored_df: DataFrame) -> DataFrame:
    """The `AlertId`s a MERGE of `alerts_df` into a window's `stored_df` would change: alerts not
    active yet (new, or raised again after a withdrawal), active ones whose findings differ, and
    active ones the new set no longer holds (they would be withdrawn). When none, the stored
    alerts already say everything the run found. Both need `ALERT_COLUMNS`."""
    findings = ALERT_COLUMNS[: ALERT_COLUMNS.index("FirstRaisedAt")]
    active_df = stored_df.transform(with_status).filter(F.col("Status") != F.lit(STATUS_RESOLVED)).select(*findings)
    joined = alerts_df.select(*findings).alias("n").join(active_df.alias("s"), on="AlertId", how="full_outer")
    one_side = F.col("n.TenantId").isNull() | F.col("s.TenantId").isNull()
    differs = [~F.col(f"n.{c}").eqNullSafe(F.col(f"s.{c}")) for c in findings[1:]]
    return joined.filter(reduce(operator.or_, differs, one_side)).select("AlertId")


def alert_order() -> list[Column]:
    """Most severe first, then most inbound threats, then domain and tenant."""
    return [
        F.col("SeverityId").desc(),
        F.col("IncomingTeamsMessagesWithThreats").desc(),
        F.col("SenderFromDomain").asc(),
        F.col("TenantId").asc(),
    ]


def sort_alerts(alerts_df: DataFrame) -> DataFrame:
    """`alerts_df` in `alert_order`."""
    return alerts_df.orderBy(*alert_order())


def _millis(col: Column) -> Column:
    """OCSF `timestamp_t`: milliseconds since the epoch."""
    return F.unix_millis(col)


def to_ocsf(alerts_df: DataFrame) -> DataFrame:
    """Alert rows as OCSF Detection Finding objects, one column per top-level attribute.

    Needs `ALERT_COLUMNS`. Written with Spark's JSON writer (`jsonl.write_jsonl`) this is JSON Lines,
    null attributes (an open window bound, a missing ratio) are left out, and the readable window
    bounds in `unmapped` are rendered in UTC. An active alert is a `Create` with status New, a
    withdrawn one a `Close` with status Resolved at its withdrawal time. Nothing here names the run
    that last raised it, so rerunning a window writes the same lines (bar the times).
    """
    alerts_df = alerts_df.transform(with_status)
    domain = F.col("SenderFromDomain")
    withdrawn = F.col("Status") == F.lit(STATUS_RESOLVED)
    activity = F.when(withdrawn, F.lit(ACTIVITY_CLOSE)).otherwise(F.lit(ACTIVITY_CREATE))
    activity_name = F.element_at(
        F.create_map(*[x for k, v in ACTIVITY_NAMES.items() for x in (F.lit(k), F.lit(v))]), activity
    )
    status_id = F.element_at(
        F.create_map(*[x for k, v in OCSF_STATUS_IDS.items() for x in (F.lit(k), F.lit(v))]), F.col("Status")
    )
    changed_at = F.when(withdrawn, F.col("WithdrawnAt")).otherwise(F.col("LastRaisedAt"))
    status_detail = F.when(
        withdrawn,
        F.concat(
            F.lit("withdrawn by run "),
            F.col("WithdrawnByRunId"),
            F.lit(": the window's latest results no longer cross a threshold for this domain"),
        ),
    )
    title = F.concat(
        F.lit("Partner domain "), domain, F.lit(" sent malicious Teams messages inbound ("), F.col("Mode"), F.lit(" mode)")
    )
    message = F.format_string(
        "%s: %d inbound Teams messages with threats against %d outbound (%s)",
        domain,
        F.col("IncomingTeamsMessagesWithThreats"),
        F.col("OutboundTeamsMessages"),
        F.array_join(F.col("Reasons"), ", "),
    )
    return alerts_df.select(
        activity.alias("activity_id"),
        activity_name.alias("activity_name"),
        F.lit(2).alias("category_uid"),
        F.lit("Findings").alias("category_name"),
        F.lit(2004).alias("class_uid"),
        F.lit("Detection Finding").alias("class_name"),
        (F.lit(200400) + activity).alias("type_uid"),
        F.concat(F.lit("Detection Finding: "), activity_name).alias("type_name"),
        F.col("SeverityId").alias("severity_id"),
        F.col("Severity").alias("severity"),
        F.coalesce(status_id, F.lit(OCSF_STATUS_IDS["Other"])).alias("status_id"),
        F.col("Status").alias("status"),
        status_detail.alias("status_detail"),
        F.lit(True).alias("is_alert"),
        _millis(changed_at).alias("time"),
        _millis(F.col("WindowStart")).alias("start_time"),
        _millis(F.col("WindowEnd")).alias("end_time"),
        F.col("IncomingTeamsMessagesWithThreats").alias("count"),
        message.alias("message"),
        F.struct(
            F.lit(OCSF_VERSION).alias("version"),
            F.col("AlertId").alias("uid"),
            F.struct(
                F.lit("partner-hunt").alias("name"),
                F.lit("partner-hunt").alias("vendor_name"),
                F.lit(__version__).alias("version"),
            ).alias("product"),
        ).alias("metadata"),
        F.struct(
            F.col("AlertId").alias("uid"),
            title.alias("title"),
            F.array(F.lit("Partner compromise")).alias("types"),
            _millis(F.col("FirstRaisedAt")).alias("created_time"),
            _millis(changed_at).alias("modified_time"),
            F.struct(
                F.col("RuleId").alias("uid"),
                F.col("RuleName").alias("name"),
                F.lit(1).alias("type_id"),
                F.lit("Rule").alias("type"),
            ).alias("analytic"),
        ).alias("finding_info"),
        F.array(
            F.struct(
                F.struct(F.col("MitreTechnique").alias("uid"), F.lit(TECHNIQUE_NAME).alias("name")).alias("technique"),
                F.struct(F.lit(TACTIC_UID).alias("uid"), F.lit(TACTIC_NAME).alias("name")).alias("tactic"),
            )
        ).alias("attacks"),
        F.array(F.struct(F.lit("Domain").alias("type"), domain.alias("name"), domain.alias("uid"))).alias("resources"),
        F.struct(
            "TenantId",
            "SenderFromDomain",
            "Mode",
            "WindowStart",
            "WindowEnd",
            "OutboundTeamsMessages",
            "IncomingTeamsMessagesWithThreats",
            "Bad_Traffic_Percentage",
            "BaselineDailyThreats",
            "Reasons",
            "MitreTactic",
            "WithdrawnByRunId",
        ).alias("unmapped"),
    )
