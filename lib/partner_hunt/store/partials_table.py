"""The daily partials table as the commands read it: its marker rows and the source it belongs to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from partner_hunt.store import io
from partner_hunt.store.locations import Locations, source_identity


def is_marker() -> Column:
    """A marker row: no tenant and no domain (a tenant's own-domain total row has a tenant)."""
    return F.col("Domain").isNull() & F.col("TenantId").isNull()


class PartialsMismatchError(RuntimeError):
    """The partials table belongs to another source."""


def check_partials_source(sources: Iterable[str | None], locations: Locations) -> None:
    """Refuse to use or extend partials computed from another source (`sources`: their markers')."""
    mine = source_identity(str(locations.source))
    others = sorted({str(s) for s in sources if s is None or source_identity(s) != mine})
    if others:
        raise PartialsMismatchError(
            f"partials table '{locations.partials}' was computed from source '{others[0]}', not "
            f"'{locations.source}'; give this hunt its own output (or state.partials) location"
        )


def partials_sources(partials_df: DataFrame) -> list[str | None]:
    """The sources the partials' rows without a domain name (bounded: distinct sources, in practice one).

    Every row of a computed day carries its source; those without a domain are few (a marker per
    day, a total per tenant and day), so they are the ones read.
    """
    rows = partials_df.filter(F.col("Domain").isNull()).select("Source").distinct().collect()
    return [r["Source"] for r in rows]


def check_partials(spark: SparkSession, locations: Locations) -> None:
    """`check_partials_source` over the partials table, if there is one yet."""
    partials_df = io.read_table_if_exists(spark, locations.partials)
    if partials_df is not None:
        check_partials_source(partials_sources(partials_df), locations)


@dataclass(frozen=True)
class Markers:
    """The partials table's marker rows (one per computed day and variant): what is done, from
    which source, at which source version. Read once per run; bounded by days x variants."""

    rows: tuple[Row, ...] = ()

    def check_source(self, locations: Locations) -> None:
        """Refuse to mix partials computed from another source into this partials table."""
        check_partials_source((r["Source"] for r in self.rows), locations)

    def done_days(self, variant_key: str) -> set[date]:
        """Days whose partials are committed for this variant."""
        return {r["Day"] for r in self.rows if r["Variant"] == variant_key}

    def oldest_version(self, variant_key: str) -> int | None:
        """The oldest source version any committed day of this variant was computed from."""
        versions = [r["SourceVersion"] for r in self.rows if r["Variant"] == variant_key and r["SourceVersion"] is not None]
        return min(versions) if versions else None


def read_markers(spark: SparkSession, locations: Locations) -> Markers:
    """The partials table's marker rows, or none when the table does not exist yet."""
    partials_df = io.read_table_if_exists(spark, locations.partials)
    if partials_df is None:
        return Markers()
    rows = (
        partials_df.filter(is_marker())
        .select("Day", "Variant", "Source", "SourceVersion")
        .collect()
    )
    return Markers(tuple(rows))
