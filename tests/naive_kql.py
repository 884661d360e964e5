"""The naive literal translation of the KQL into PySpark: the tests' oracle and the benchmark's
baseline, never the job.

It is what a user would write first from the published query: two scans of the source, an
`mv-expand` (explode) on each side, a `summarize` on the left, an inner join, and a second
`summarize`. It is written *correctly* (KQL's null/empty-array, `tostring(null)` and null-flag
semantics), so its results equal partner-hunt's in `kql` mode, and it only differs in its plan.

Input is the typed Defender shape of MessageEvents (RecipientDetails array<struct>, boolean
flags, string ThreatTypes); a missing TenantId column means one tenant, as in `schema.py`.

Also a whole-process job: `python tests/naive_kql.py --source PATH --output PATH [--driver-memory 1g]`.
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-000000000000"


def _tenant(source_df: DataFrame):
    if "TenantId" in source_df.columns:
        return F.col("TenantId")
    return F.lit(DEFAULT_TENANT_ID)


def _mv_expand_domain(source_df: DataFrame, domain_name: str) -> DataFrame:
    """`mv-expand Recipients = RecipientDetails | extend X = tostring(split(addr, "@")[1])`."""
    # mv-expand keeps a null array as one row holding null, and drops an empty array.
    recipients = F.coalesce(
        F.col("RecipientDetails"), F.array(F.lit(None).cast(source_df.schema["RecipientDetails"].dataType.elementType))
    )
    return (
        source_df.withColumn("Recipients", F.explode(recipients))
        .withColumn("RecipientEmailAddress", F.col("Recipients.RecipientSmtpAddress"))
        .withColumn(domain_name, F.coalesce(F.get(F.split(F.col("RecipientEmailAddress"), "@"), 1), F.lit("")))
    )


def naive_hunt(source_df: DataFrame) -> DataFrame:
    """The published query, clause by clause; one row per (TenantId, SenderFromDomain)."""
    events_df = source_df.withColumn("TenantId", _tenant(source_df))
    outbound_df = (
        events_df.where(F.col("IsExternalThread") & F.col("IsOwnedThread"))
        .transform(_mv_expand_domain, "RecipientDomain")
        .groupBy("TenantId", "RecipientDomain")
        .agg(F.count(F.lit(1)).alias("OutboundCount"))
        .select(
            F.col("TenantId").alias("l_TenantId"),
            "OutboundCount",
            F.col("RecipientDomain").alias("SenderFromDomain"),
        )
        .alias("l")
    )
    inbound_df = (
        events_df.transform(_mv_expand_domain, "SenderFromDomain")
        .where(
            F.col("IsExternalThread")
            & ~F.col("IsOwnedThread")
            # isempty(ThreatTypes) == false
            & F.col("ThreatTypes").isNotNull()
            & (F.col("ThreatTypes") != F.lit(""))
        )
        .alias("r")
    )
    joined_df = outbound_df.join(
        inbound_df,
        on=(F.col("l.SenderFromDomain") == F.col("r.SenderFromDomain")) & (F.col("l.l_TenantId") == F.col("r.TenantId")),
        how="inner",
    )
    return joined_df.groupBy(F.col("r.TenantId").alias("TenantId"), F.col("r.SenderFromDomain").alias("SenderFromDomain")).agg(
        F.max("l.OutboundCount").cast("long").alias("OutboundTeamsMessages"),
        F.count(F.lit(1)).cast("long").alias("IncomingTeamsMessagesWithThreats"),
    )


def main(argv: list[str] | None = None) -> int:
    """Whole-process naive job: read the Delta source, run the literal translation, write Delta."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--shuffle-partitions", default="8")
    args = parser.parse_args(argv)

    from partner_hunt.store.session import build_session

    spark = build_session(
        master=args.master,
        app_name="naive-hunt",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": args.shuffle_partitions,
            "spark.sql.adaptive.enabled": "true",
            "spark.driver.memory": args.driver_memory,
        },
    )
    source_df = spark.read.format("delta").load(args.source)
    naive_hunt(source_df).write.format("delta").mode("overwrite").save(args.output)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
