"""How a source value written as text or as another type is read: instants and flags (pure Columns).

The hunt's contract (`schema.py`) and the ingest of exported JSON (`landed.py`) read them alike.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

INTEGERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
FRACTIONS = (T.FloatType, T.DoubleType, T.DecimalType)

# `RecipientDetails` as Defender writes it: an array of these objects.
RECIPIENT = T.StructType(
    [
        T.StructField("RecipientSmtpAddress", T.StringType()),
        T.StructField("RecipientDisplayName", T.StringType()),
        T.StructField("RecipientType", T.StringType()),
        T.StructField("RecipientObjectId", T.StringType()),
    ]
)
RECIPIENTS = T.ArrayType(RECIPIENT)


def flag(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(boolean value, is-bad) for a flag column; null stays null (KQL: on neither side)."""
    if isinstance(dtype, T.BooleanType):
        return col, F.lit(False)
    if isinstance(dtype, (*INTEGERS, *FRACTIONS)):
        value = F.when(col == 1, F.lit(True)).when(col == 0, F.lit(False))
        return value, col.isNotNull() & value.isNull()
    text = F.lower(F.trim(col))
    value = F.when(text.isin("true", "1"), F.lit(True)).when(text.isin("false", "0"), F.lit(False))
    # An empty string is how CSV-ish exports write a missing flag: null, not malformed.
    return value, col.isNotNull() & (text != F.lit("")) & value.isNull()


# A trailing zone: Z, +hh[:mm] / -hhmm, or a named zone such as "UTC" or "Europe/Paris".
_HAS_ZONE = r"(?i)(z|[+-]\d{1,2}(:?\d{2})?|\s*[a-z][a-z_]*(/[a-z_]+)*)$"
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"


def utc_instant(text: Column) -> Column:
    """Parse an ISO 8601 text to an instant; text without a zone is UTC, whatever the session zone.

    `try_to_timestamp` would read zone-less text in `spark.sql.session.timeZone`; appending `Z`
    pins it to UTC. Fractions beyond microseconds (Kusto writes 7 digits) are truncated.
    """
    text = F.trim(text)
    dated = F.when(text.rlike(_DATE_ONLY), F.concat(text, F.lit("T00:00:00"))).otherwise(text)
    zoned = F.when(dated.rlike(_HAS_ZONE), dated).otherwise(F.concat(dated, F.lit("Z")))
    # Defender writes UTC with a trailing `Z`: such text needs neither pattern (the zone one scans
    # the whole text from every position, most of the parse's cost), and the two read it alike.
    return F.when(F.endswith(F.upper(text), F.lit("Z")), F.try_to_timestamp(text)).otherwise(F.try_to_timestamp(zoned))


def timestamp(col: Column, dtype: T.DataType) -> tuple[Column, Column]:
    """(UTC timestamp, is-bad); a null or unparseable time is bad, since no window can hold it."""
    if isinstance(dtype, T.TimestampType):
        value = col
    elif isinstance(dtype, (T.TimestampNTZType, T.DateType)):
        # Wall-clock times in exports are UTC: labelled as such, not shifted by the session zone.
        value = utc_instant(col.cast("timestamp_ntz").cast("string"))
    else:
        value = utc_instant(col)
    return value, value.isNull()


def utc_instant_of(text: Column) -> tuple[Column, Column]:
    """(UTC timestamp, is-bad) of an ISO 8601 text, as the contract reads a string `Timestamp`."""
    return timestamp(text, T.StringType())


def flag_of_text(text: Column) -> tuple[Column, Column]:
    """(boolean, is-bad) of a flag written as text (`true`, `1`, ...), as the contract reads one."""
    return flag(text, T.StringType())


def recipients_of_text(text: Column) -> tuple[Column, Column]:
    """(RecipientDetails, is-bad) typed from its JSON text (an array in the export, or a string holding one)."""
    trimmed = F.trim(text)
    value = F.when(~_no_recipients(text), F.from_json(trimmed, RECIPIENTS))
    return value, recipients_unreadable(text, value)


def _no_recipients(text: Column) -> Column:
    """A `RecipientDetails` text that holds no value: null, empty or a JSON null."""
    return text.isNull() | F.trim(text).isin("", "null")


def recipients_unreadable(text: Column, value: Column) -> Column:
    """Whether `RecipientDetails` text that holds a value gave no array (`value`, as
    `recipients_of_text` types it): given the typed value, the text is not parsed again."""
    return ~_no_recipients(text) & value.isNull()
