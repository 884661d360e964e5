"""Personal data in what partner-hunt keeps: e-mail addresses pseudonymised, display names dropped.

Pure `Column` functions over JSON text (the quarantine's `SourceRecord`), built from Spark
built-ins only: `regexp_replace` cannot compute a hash, so each distinct address found is
replaced in turn (`aggregate` over `regexp_extract_all`). See docs/personal-data.md.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# Characters that end an address in JSON text or a mailbox header: quotes and backslashes (JSON
# escapes), white space, `@`, and the punctuation around addresses (`"Name" <a@b.com>`, lists).
_DELIMITERS = r'\s"\\@,;:<>()\[\]'
_LOCAL = rf"[^{_DELIMITERS}]+"
_LABEL = r"[\p{L}\p{N}-]+"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
ADDRESS_PATTERN = rf"(?<![^{_DELIMITERS}]){_LOCAL}@{_DOMAIN}"
# An address is replaced only where it stands whole: not inside a longer local part or domain.
_BEFORE = rf"(?<![^{_DELIMITERS}])\Q"
_AFTER = r"\E(?![\p{L}\p{N}-]|\.[\p{L}\p{N}-])"

# A `...DisplayName` member of a JSON object, with its string value; the second form is the same
# member inside a JSON string (a `RecipientDetails` kept as JSON text, escaped once more).
_DISPLAY_NAME = r'("[A-Za-z]*DisplayName"\s*:\s*)"(?:[^"\\]|\\.)*"'
_ESCAPED_DISPLAY_NAME = r'(\\"[A-Za-z]*DisplayName\\"\s*:\s*)\\"(?:[^"\\]|\\\\\\\\)*?\\"'

TOKEN_HEX_DIGITS = 16


def local_part_token(local: Column) -> Column:
    """The stable pseudonym of an address's local part: the first 16 hex digits of its SHA-256.

    Lower-cased first, so `Alice@` and `alice@` (one mailbox in practice) get one token.
    """
    return F.substring(F.sha2(F.lower(local), 256), 1, TOKEN_HEX_DIGITS)


def pseudonymise_address(address: Column) -> Column:
    """`alice@partner.com` -> `<token>@partner.com`: the local part hashed, the domain kept."""
    local = F.substring_index(address, "@", 1)
    domain = F.substring_index(address, "@", -1)
    return F.concat(local_part_token(local), F.lit("@"), domain)


def redact_json(col: Column) -> Column:
    """JSON text with every e-mail address pseudonymised and every `*DisplayName` value nulled.

    Domains stay readable (they are what the hunt is about) and the same address always maps to
    the same token, so quarantined rows can still be grouped by sender or recipient.
    """
    without_names = F.regexp_replace(
        F.regexp_replace(col, F.lit(_DISPLAY_NAME), F.lit("$1null")), F.lit(_ESCAPED_DISPLAY_NAME), F.lit("$1null")
    )
    found = F.array_distinct(F.regexp_extract_all(without_names, F.lit(ADDRESS_PATTERN), 0))

    def replace_one(text: Column, address: Column) -> Column:
        # The address cannot hold `\E` (backslashes end an address), so \Q...\E quotes it whole;
        # the token holds only hex digits, `@` and domain characters, none special in a replacement.
        pattern = F.concat(F.lit(_BEFORE), address, F.lit(_AFTER))
        return F.regexp_replace(text, pattern, pseudonymise_address(address))

    return F.when(col.isNotNull(), F.aggregate(found, without_names, replace_one))


def source_record(col: Column, mode: str) -> Column:
    """The quarantine's `SourceRecord` under `quality.quarantine_record`: full, redacted or none."""
    if mode == "full":
        return col
    if mode == "redacted":
        return redact_json(col)
    if mode == "none":
        return F.lit(None).cast("string")
    raise ValueError(f"quarantine record mode {mode!r} is not one of full, redacted, none")
