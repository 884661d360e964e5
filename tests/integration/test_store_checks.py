"""The quarantine keeps each bad row once, and two locations are refused before the first write:
a file where the alerts' JSON Lines folder goes, and a bare source name that is a folder here."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.config import config_from_mapping
from partner_hunt.core.tables import QUARANTINE_COLUMNS
from partner_hunt.store import io, source
from partner_hunt.store.locations import Locations, TableRef
from partner_hunt.store.runlog import RunReport
from tests.conftest import T0
from tests.unit.test_prechecks import WINDOW, fake_delta, refused

pytestmark = pytest.mark.integration

# What `quality.prepare` gives the quarantine: the canonical columns it keeps, and the record as read.
BAD_DDL = "QuarantineReason string, TenantId string, Timestamp timestamp, TeamsMessageId string, ReportId string, SourceRecord string"
KEPT_DDL = "RunId string, QuarantinedAt timestamp, Reason string, TeamsMessageId string, SourceRecord string"

A = ("BAD_TIMESTAMP", "t1", None, "a", "ra", '{"TeamsMessageId":"a","Timestamp":"junk"}')
B = ("BAD_FLAG", "t1", T0, "b", "rb", '{"TeamsMessageId":"b","IsExternalThread":"maybe"}')
# The same record twice in one read: two rows of the source, both kept.
C = ("BAD_RECIPIENT_DETAILS", "t2", T0, "c", "rc", '{"TeamsMessageId":"c","RecipientDetails":"not json"}')
D = ("BAD_TIMESTAMP", "t2", None, "d", "rd", '{"TeamsMessageId":"d","Timestamp":""}')


def report_for(tmp_path, run_id: str, started_at) -> RunReport:
    config = config_from_mapping({"source": str(tmp_path / "events"), "output": str(tmp_path / "out")})
    return RunReport(
        run_id=run_id, command="backfill", config_hash="h", locations=Locations.from_config(config),
        mode="kql", variant="v", window_start=None, window_end=None, started_at=started_at,
    )


def kept(spark, tmp_path):
    return io.read_table(spark, TableRef(str(tmp_path / "out_quarantine"), True))


def test_each_bad_row_is_quarantined_once_across_commands(spark, tmp_path):
    first, second = report_for(tmp_path, "r1", T0), report_for(tmp_path, "r2", T0 + timedelta(hours=1))
    source.write_quarantine(spark.createDataFrame([A, B, C, C], BAD_DDL), first, "full")
    # A refresh of the same day reads the same bad rows again, and one more.
    source.write_quarantine(spark.createDataFrame([C, A, D, B, C], BAD_DDL), second, "full")

    quarantine_df = kept(spark, tmp_path)
    assert quarantine_df.columns == list(QUARANTINE_COLUMNS)
    assert_df_equality(
        quarantine_df.select("RunId", "QuarantinedAt", "Reason", "TeamsMessageId", "SourceRecord"),
        spark.createDataFrame(
            [
                ("r1", T0, "BAD_TIMESTAMP", "a", A[5]),
                ("r1", T0, "BAD_FLAG", "b", B[5]),
                ("r1", T0, "BAD_RECIPIENT_DETAILS", "c", C[5]),
                ("r1", T0, "BAD_RECIPIENT_DETAILS", "c", C[5]),
                ("r2", T0 + timedelta(hours=1), "BAD_TIMESTAMP", "d", D[5]),
            ],
            KEPT_DDL,
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    keys = [r["RowKey"] for r in quarantine_df.select("RowKey").collect()]
    assert len(set(keys)) == 5 and all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)


def test_the_key_is_the_record_as_read_not_as_kept(spark, tmp_path):
    """Two records with one reason are two rows even when none of either is kept, and keeping the
    record in full later does not make them new rows."""
    alice = ("BAD_FLAG", "t1", T0, "x", "rx", '{"SenderEmailAddress":"Alice.Smith@p.com","IsOwnedThread":"?"}')
    bob = ("BAD_FLAG", "t1", T0, "x", "rx", '{"SenderEmailAddress":"Bob@p.com","IsOwnedThread":"?"}')
    source.write_quarantine(spark.createDataFrame([alice, bob], BAD_DDL), report_for(tmp_path, "r1", T0), "none")
    source.write_quarantine(spark.createDataFrame([bob, alice], BAD_DDL), report_for(tmp_path, "r2", T0), "full")

    quarantine_df = kept(spark, tmp_path)
    assert_df_equality(
        quarantine_df.select("RunId", "QuarantinedAt", "Reason", "TeamsMessageId", "SourceRecord"),
        spark.createDataFrame([("r1", T0, "BAD_FLAG", "x", None), ("r1", T0, "BAD_FLAG", "x", None)], KEPT_DDL),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert quarantine_df.filter(F.col("RowKey").contains("@") | F.col("RowKey").rlike("(?i)alice|bob")).count() == 0


def test_an_older_quarantine_gains_the_key(spark, tmp_path):
    old_ddl = (
        "RunId string, QuarantinedAt timestamp, Source string, Reason string, TenantId string, "
        "Timestamp timestamp, TeamsMessageId string, ReportId string, SourceRecord string"
    )
    path = str(tmp_path / "out_quarantine")
    old_row = ("r0", T0, str(tmp_path / "events"), *A[:5], None)
    spark.createDataFrame([old_row], old_ddl).write.format("delta").save(path)

    source.write_quarantine(spark.createDataFrame([B], BAD_DDL), report_for(tmp_path, "r1", T0), "none")

    quarantine_df = kept(spark, tmp_path)
    assert quarantine_df.columns == list(QUARANTINE_COLUMNS)
    assert_df_equality(
        quarantine_df.select("RunId", "TeamsMessageId", F.col("RowKey").isNotNull().alias("Keyed")),
        spark.createDataFrame([("r0", "a", False), ("r1", "b", True)], "RunId string, TeamsMessageId string, Keyed boolean"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


# --- refused before the first write


def test_a_file_where_the_alert_jsonl_folder_goes_is_refused(spark, capsys, tmp_path):
    events = fake_delta(tmp_path / "events")
    jsonl = tmp_path / "out_alerts_jsonl"
    jsonl.write_text("not a folder")
    line = refused(capsys, ["run", "--source", str(events), "--output", str(tmp_path / "out"), *WINDOW], "is a file")
    assert f"'{jsonl}'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "out_alerts_jsonl"]


def test_a_bare_source_name_that_is_a_folder_here_is_named_as_such(spark, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_delta(tmp_path / "src6")
    refused(
        capsys,
        ["run", "--source", "src6", "--output", str(tmp_path / "out"), *WINDOW],
        "table 'src6' does not exist; a folder './src6' exists here: give a path as ./src6 to read it",
    )
    # Found before the first write: not even the run log was started.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src6"]
