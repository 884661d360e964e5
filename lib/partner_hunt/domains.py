"""Domain extraction and normalisation, as Column expressions (no UDFs)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def kql_domain(col: Column) -> Column:
    """`tostring(split(addr, "@")[1])`: the text between the first and second `@`, else `""`.

    KQL's out-of-range index gives null and tostring(null) gives "", so every miss (no `@`,
    empty or null address) lands in the "" group. `F.get` keeps Spark 4's ANSI mode from
    raising on the out-of-range index.
    """
    return F.coalesce(F.get(F.split(col, "@"), 1), F.lit(""))


def normalized(col: Column) -> Column:
    """Lower-case, trim white space, and drop trailing dots (`Fabrikam.COM. ` -> `fabrikam.com`)."""
    return F.lower(F.regexp_replace(col, r"^\s+|[\s.]+$", ""))


def recipient_domains(col: Column, normalize: bool = False) -> Column:
    """Map `RecipientDetails` to an array of recipient domains with KQL mv-expand semantics.

    mv-expand keeps a null array as one row holding null, whose domain is then "", but drops an
    empty array: so null becomes `[""]` and `[]` stays empty for `explode` to drop.
    """
    def domain_of(recipient: Column) -> Column:
        domain = kql_domain(recipient["RecipientSmtpAddress"])
        return normalized(domain) if normalize else domain

    empty_domain = normalized(F.lit("")) if normalize else F.lit("")
    return F.when(col.isNull(), F.array(empty_domain)).otherwise(F.transform(col, domain_of))


def sender_domain(col: Column, normalize: bool = False) -> Column:
    """The domain of a sender address, extracted exactly as the recipients' domains are."""
    domain = kql_domain(col)
    return normalized(domain) if normalize else domain
