"""Which history entries count as appends or as commits that change no row: pure logic, no Spark."""

from __future__ import annotations

import pytest
from pyspark.sql import Row

from partner_hunt.store.changes import _appends_only, first_line


def commit(operation, params=None, metrics=None):
    return Row(version=3, operation=operation, operationParameters=params or {}, operationMetrics=metrics or {})


@pytest.mark.parametrize(
    "entry,appends",
    [
        (commit("WRITE", {"mode": "Append", "partitionBy": "[]"}), True),
        (commit("WRITE", {"mode": "Overwrite"}), False),
        (commit("STREAMING UPDATE", {"outputMode": "Append"}), True),
        (commit("STREAMING UPDATE", {"outputMode": "Complete"}), False),
        (commit("OPTIMIZE", {"predicate": "[]", "zOrderBy": '["Timestamp"]'}), True),
        (commit("VACUUM START"), True),
        (commit("VACUUM END"), True),
        (commit("REORG", {"applyPurge": "true"}), True),
        (commit("SET TBLPROPERTIES", {"properties": '{"delta.enableChangeDataFeed":"true"}'}), True),
        # Insert-only MERGE adds files and removes none.
        (commit("MERGE", metrics={"numTargetRowsInserted": "4", "numTargetRowsUpdated": "0",
                                  "numTargetRowsDeleted": "0", "numTargetFilesRemoved": "0"}), True),
        (commit("MERGE", metrics={"numTargetRowsUpdated": "2", "numTargetFilesRemoved": "1"}), False),
        # With deletion vectors a MERGE may remove no file and still update rows.
        (commit("MERGE", metrics={"numTargetRowsUpdated": "0", "numTargetRowsDeleted": "0",
                                  "numTargetFilesRemoved": "0", "numTargetDeletionVectorsAdded": "1"}), False),
        (commit("DELETE", {"predicate": '["(TenantId = t1)"]'}), False),
        (commit("UPDATE"), False),
        (commit("RESTORE", {"version": "1"}), False),
        (commit("TRUNCATE"), False),
        (commit("RENAME COLUMN"), False),
        (commit("SOMETHING NEW"), False),
    ],
)
def test_only_appends_and_no_data_commits_keep_the_refresh_incremental(entry, appends):
    assert _appends_only(entry) is appends


def test_first_line_skips_the_jvm_stack():
    assert first_line(ValueError("\n[DELTA_X] boom\n\tat org.apache...")) == "[DELTA_X] boom"
    assert first_line(ValueError("")) == "ValueError"
    wrapped = (
        "[STREAM_FAILED] Query [id = 1] terminated with exception: [FOREACH_BATCH_USER_FUNCTION_ERROR] boom\n"
        "Traceback (most recent call last):\n  File x\n"
        "pyspark.errors.SparkException: [FAILED_READ_FILE.FILE_NOT_EXIST] Encountered error while reading file f.parquet\n"
        "\tat org.apache.spark.Foo(Foo.scala:1)"
    )
    assert first_line(RuntimeError(wrapped)) == (
        "pyspark.errors.SparkException: [FAILED_READ_FILE.FILE_NOT_EXIST] Encountered error while reading file f.parquet"
    )
