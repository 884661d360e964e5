"""The tables partner-hunt writes: one DDL string each, imported by the code and the tests alike.

Columns we add follow Microsoft's PascalCase; the results keep the KQL output names.
"""

from __future__ import annotations

from datetime import datetime

RESULT_COLUMNS = (
    "TenantId",
    "SenderFromDomain",
    "OutboundTeamsMessages",
    "IncomingTeamsMessagesWithThreats",
    "Bad_Traffic_Percentage",
)

# The hunt's rows (RESULT_COLUMNS) plus the window and the run that wrote them.
RESULTS_DDL = (
    "TenantId string, SenderFromDomain string, OutboundTeamsMessages bigint, "
    "IncomingTeamsMessagesWithThreats bigint, Bad_Traffic_Percentage double, "
    "WindowStart timestamp, WindowEnd timestamp, Mode string, RunId string, ComputedAt timestamp"
)

PARTIALS_DDL = (
    "TenantId string, Day date, Variant string, Mode string, Domain string, "
    "OutboundTeamsMessages bigint, IncomingTeamsMessagesWithThreats bigint, "
    "FirstSeen timestamp, LastSeen timestamp, Source string, SourceVersion bigint, "
    "RunId string, ComputedAt timestamp, "
    # `hunt.own_domains: auto` only: pieces of own-domain evidence naming the domain that day, or
    # on a row with a null Domain the tenant's total (see core/own_domains.py).
    "OwnDomainEvidence bigint"
)

RUN_LOG_DDL = (
    "RunId string, Command string, ConfigHash string, Status string, Error string, "
    "StartedAt timestamp, FinishedAt timestamp, DurationSeconds double, Source string, "
    "SourceVersion bigint, Output string, Mode string, Variant string, "
    "WindowStart timestamp, WindowEnd timestamp, DaysComputed array<date>, RowsRead bigint, "
    "RowsUsed bigint, RowsQuarantined bigint, QuarantineByReason map<string,bigint>, "
    "RecipientRowsExploded bigint, ResultRows bigint, SkippedFiles array<string>, JobRunId string, "
    # `run --incremental` only: whether it recomputed the changed days or the whole window, and why.
    "RefreshKind string, RefreshReason string, "
    # `hunt.own_domains: auto` only: each tenant's own domains as derived from the window's events.
    "OwnDomains map<string,array<string>>, "
    # `ingest` only: the export folder read, and what it read (INGEST_COUNTS).
    "IngestInput string, IngestCounts map<string,bigint>, "
    # Commands that compute partials: the version of each signal table they read, by its key
    # (`signals.SignalTable.key`), from which the next refresh looks for late signals.
    "SignalVersions map<string,bigint>"
)

# The counts of an ingest's run-log row, in the order they are shown.
INGEST_COUNTS = (
    "FilesRead",
    "BytesRead",
    "Records",
    "RecordsIngested",
    "DuplicatesSkipped",
    "OtherCategories",
    "Quarantined",
    "IncompleteLinesHeldBack",
    # Records of Defender's Teams signal tables (`signals.SIGNAL_TABLES`), read and added.
    "SignalRecords",
    "SignalRecordsIngested",
)

# What `ingest` cannot read: the line as it was (redacted as `quality.quarantine_record` says),
# where it was, and why. Keyed by (File, LineNumber): a line is quarantined once.
INGEST_QUARANTINE_DDL = (
    "File string, LineNumber bigint, Reason string, Category string, TenantId string, "
    "Record string, RunId string, QuarantinedAt timestamp"
)

EVIDENCE_DDL = (
    "TenantId string, SenderFromDomain string, WindowStart timestamp, WindowEnd timestamp, "
    "Mode string, OutboundTeamsMessages bigint, IncomingTeamsMessagesWithThreats bigint, "
    "Bad_Traffic_Percentage double, FirstThreatSeen timestamp, LastThreatSeen timestamp, "
    "DistinctThreatMessages bigint, DistinctSenders bigint, "
    "ThreatTypeCounts array<struct<ThreatType:string,Count:bigint>>, "
    "InboundSenderDomains array<struct<Domain:string,Count:bigint>>, "
    "SampleTeamsMessageIds array<string>, SenderAddresses array<string>, "
    "DailyCounts array<struct<Day:date,OutboundTeamsMessages:bigint,IncomingTeamsMessagesWithThreats:bigint>>, "
    "RunId string, ComputedAt timestamp"
)

# `Status` is `New` while the latest run of the alert's window raises it and `Resolved` once a
# run of that window no longer does (`WithdrawnAt`, `WithdrawnByRunId`); new columns go last, so
# an alerts table written before them gains them by ALTER TABLE ADD COLUMNS (`merge.upsert`).
ALERTS_DDL = (
    "AlertId string, TenantId string, SenderFromDomain string, WindowStart timestamp, "
    "WindowEnd timestamp, Mode string, OutboundTeamsMessages bigint, "
    "IncomingTeamsMessagesWithThreats bigint, Bad_Traffic_Percentage double, "
    "BaselineDailyThreats double, Reasons array<string>, SeverityId int, Severity string, "
    "RuleId string, RuleName string, MitreTechnique string, MitreTactic string, "
    "FirstRaisedAt timestamp, LastRaisedAt timestamp, RunId string, "
    "Status string, WithdrawnAt timestamp, WithdrawnByRunId string"
)


# One row per bad source row, kept once: `RowKey` is a sha2 of the source, the reason, the record
# as read (before `quality.quarantine_record` redacts it) and its occurrence among identical
# records, so a later command that reads the row again adds nothing. `RunId` is the run that first
# kept it. `RowKey` goes last: a quarantine written before it gains it by ALTER TABLE ADD COLUMNS.
QUARANTINE_DDL = (
    "RunId string, QuarantinedAt timestamp, Source string, Reason string, TenantId string, "
    "Timestamp timestamp, TeamsMessageId string, ReportId string, SourceRecord string, RowKey string"
)

# One row per (TenantId, Domain, Variant) over every day the daily partials hold (`partners.py`):
# first and last day per side, totals, the trailing baseline before the latest window and that
# window's own counts. Replaced as a whole per variant on every backfill and refresh.
PARTNERS_DDL = (
    "TenantId string, Domain string, Variant string, Mode string, "
    "FirstSeenOutbound date, LastSeenOutbound date, FirstSeenInbound date, LastSeenInbound date, "
    "ActiveDays bigint, OutboundTeamsMessages bigint, IncomingTeamsMessagesWithThreats bigint, "
    "BaselineOutbound bigint, BaselineThreats bigint, BaselineThreatRate double, "
    "WindowOutbound bigint, WindowThreats bigint, WindowThreatRate double, ThreatRateChange double, "
    "NewPartner boolean, HistoryStart date, BaselineStart date, WindowStart date, WindowEnd date, "
    "RunId string, ComputedAt timestamp"
)

_SIGNAL_COUNTS = (
    "InboundMessages", "ThreatsAtDelivery", "RemovedAfterDelivery", "ThreatsAfterDelivery", "ThreatsKnownNow",
    "MessagesWithUrls", "Clicks", "ClicksAllowed", "ClicksBlocked", "ClicksThrough",
)
# Per day of the message and partner domain: what became of the partner's messages after delivery
# (core/partner_signals.py). `Signals` names the signal tables the day was computed with.
SIGNAL_PARTIALS_DDL = (
    "TenantId string, Day date, Variant string, Domain string, "
    + "".join(f"{c} bigint, " for c in _SIGNAL_COUNTS)
    + "RemovedByAction map<string,bigint>, RemovedByThreat map<string,bigint>, UrlDomains array<string>, "
    "Signals array<string>, RunId string, ComputedAt timestamp"
)

PARTNER_RISK_DDL = (
    "TenantId string, Domain string, Variant string, Mode string, RiskScore double, FirstContact date, NewPartner boolean, "
    "OutboundTeamsMessages bigint, IncomingTeamsMessagesWithThreats bigint, WindowOutbound bigint, WindowThreats bigint, "
    "BaselineThreatRate double, WindowThreatRate double, ThreatRateChange double, "
    "FirstSeenOutbound date, FirstSeenInbound date, FirstInboundMessage date, "
    + "".join(f"Window{c} bigint, " for c in _SIGNAL_COUNTS)
    + "WindowUrlDomains bigint, "
    + "".join(f"{c} bigint, " for c in _SIGNAL_COUNTS)
    + "ScoreThreatsAtDelivery double, ScoreThreatsAfterDelivery double, ScoreClicksAllowed double, "
    "ScoreClicksThrough double, ScoreClicksBlocked double, ScoreThreatRateChange double, "
    "WindowStart date, WindowEnd date, RunId string, ComputedAt timestamp"
)


def columns(ddl: str) -> tuple[str, ...]:
    """The column names of a DDL string, in order (commas inside `<...>` do not split)."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(ddl + ","):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(ddl[start:i].strip().split(" ", 1)[0])
            start = i + 1
    return tuple(names)


PARTIALS_COLUMNS = columns(PARTIALS_DDL)
RUN_LOG_COLUMNS = columns(RUN_LOG_DDL)
EVIDENCE_COLUMNS = columns(EVIDENCE_DDL)
ALERT_COLUMNS = columns(ALERTS_DDL)
PARTNERS_COLUMNS = columns(PARTNERS_DDL)
SIGNAL_PARTIALS_COLUMNS = columns(SIGNAL_PARTIALS_DDL)
PARTNER_RISK_COLUMNS = columns(PARTNER_RISK_DDL)
QUARANTINE_COLUMNS = columns(QUARANTINE_DDL)


def window_key(mode: str, window: tuple[datetime | None, datetime | None]) -> dict[str, object]:
    """The columns that identify one window's rows in the results, evidence and alerts tables."""
    return {"WindowStart": window[0], "WindowEnd": window[1], "Mode": mode}
