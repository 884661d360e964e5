"""Domain extraction and normalisation, as Column expressions (no UDFs)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def kql_domain(col: Column) -> Column:
    """`tostring(split(addr, "@")[1])`: the text between the first and second `@`, else `""`.

    KQL's out-of-range index gives null and tostring(null) gives "", so every miss (no `@`,
    empty or null address) lands in the "" group.
    """
    # The same answer as coalesce(get(split(col, "@"), 1), ""), but computed on the UTF-8 bytes:
    # `split` decodes each address to a Java string, runs a pattern split and builds an array.
    after_first_at = F.substring_index(F.substring_index(col, "@", 2), "@", -1)
    return F.when(F.instr(col, "@") > F.lit(0), after_first_at).otherwise(F.lit(""))


def normalized(col: Column) -> Column:
    """Lower-case, trim white space, and drop trailing dots (`Fabrikam.COM. ` -> `fabrikam.com`)."""
    return F.lower(F.regexp_replace(col, r"^\s+|[\s.]+$", ""))


def recipient_addresses(col: Column) -> Column:
    """Canonical `RecipientAddresses` (array<string>) made ready to explode with mv-expand's rules.

    mv-expand keeps a null array as one row holding null and drops an empty array: so null becomes
    `[null]` (whose domain is "") and `[]` stays empty for `explode` to drop.
    """
    return F.coalesce(col, F.array(F.lit(None).cast("string")))


def address_domain(col: Column, normalize: bool = False) -> Column:
    """The counted domain of one address (a recipient or a sender): KQL's split, optionally normalised."""
    domain = kql_domain(col)
    return normalized(domain) if normalize else domain
