"""Run the schema contract and the hunt through a Spark Connect session; print the results as JSON.

Usage: python -m tests.integration.connect_client sc://HOST:PORT SOURCE_DELTA_PATH OUTPUT_PATH

Started as a child process by test_connect.py, because a classic and a Connect session do not mix
in one Python process. It reads and writes Delta through the DataFrame API only: that needs the
Delta JARs on the server, not the Delta Connect plugin (see docs/cluster.md).
"""

from __future__ import annotations

import json
import sys

from pyspark.sql import DataFrame

from partner_hunt.core import hunt, schema
from partner_hunt.core.options import CountOptions, FinishOptions
from partner_hunt.store.session import build_session


def results(source_df: DataFrame, mode: str) -> DataFrame:
    """Canonical shape, quarantine dropped, then the hunt: the job's core, minus its I/O."""
    req = schema.Requirements(sender=mode == "corrected", message_id=mode == "corrected")
    return (
        source_df.transform(schema.to_canonical, req)
        .transform(schema.drop_quarantined)
        .transform(hunt.count_window, CountOptions(mode, mode == "corrected", mode == "corrected"), False)
        .transform(hunt.window_results, FinishOptions(normalize=mode == "corrected"))
    )


def main(remote: str, source: str, output: str) -> None:
    spark = build_session(remote=remote)
    source_df = spark.read.format("delta").load(source)
    out = {}
    for mode in ("kql", "corrected"):
        path = f"{output}/{mode}"
        results(source_df, mode).write.format("delta").mode("overwrite").save(path)
        # Bounded: one row per domain of a small test lake.
        rows = spark.read.format("delta").load(path).collect()
        out[mode] = [row.asDict() for row in rows]
    out["session"] = type(spark).__module__
    spark.stop()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
