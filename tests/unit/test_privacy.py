"""Quarantine record redaction: local parts hashed (stable), domains kept, display names dropped."""

from __future__ import annotations

import hashlib

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from partner_hunt.core import privacy


def token(local: str) -> str:
    """As specified: the first 16 hex digits of SHA-256 of the lower-cased local part."""
    return hashlib.sha256(local.lower().encode()).hexdigest()[:16]


def redacted(spark, *records, mode="redacted"):
    df = spark.createDataFrame([(i, r) for i, r in enumerate(records)], "Id int, SourceRecord string")
    return df.select("Id", privacy.source_record(F.col("SourceRecord"), mode).alias("SourceRecord"))


def expected(spark, *records):
    return spark.createDataFrame([(i, r) for i, r in enumerate(records)], "Id int, SourceRecord string")


def test_redacted_hashes_every_local_part_keeps_domains_and_drops_display_names(spark):
    actual = redacted(
        spark,
        '{"SenderEmailAddress":"Alice.Smith@Partner.com","RecipientDetails":'
        '[{"RecipientSmtpAddress":"bob@q.com","RecipientDisplayName":"Bob \\"B\\" Jones"},'
        '{"RecipientSmtpAddress":"alice.smith@partner.com","RecipientDisplayName":"Alice"}]}',
        # RecipientDetails kept as JSON text: the same members, escaped once more.
        '{"RecipientDetails":"[{\\"RecipientSmtpAddress\\":\\"ba@x.com\\",\\"RecipientDisplayName\\":\\"Ba\\"}]",'
        '"SenderEmailAddress":"a@x.com"}',
        # No address at all, a bare domain, and a null record.
        '{"ThreatTypes":"Phish","Note":"partner.com"}',
        None,
    )
    check = expected(
        spark,
        f'{{"SenderEmailAddress":"{token("alice.smith")}@Partner.com","RecipientDetails":'
        f'[{{"RecipientSmtpAddress":"{token("bob")}@q.com","RecipientDisplayName":null}},'
        f'{{"RecipientSmtpAddress":"{token("alice.smith")}@partner.com","RecipientDisplayName":null}}]}}',
        f'{{"RecipientDetails":"[{{\\"RecipientSmtpAddress\\":\\"{token("ba")}@x.com\\",\\"RecipientDisplayName\\":null}}]",'
        f'"SenderEmailAddress":"{token("a")}@x.com"}}',
        '{"ThreatTypes":"Phish","Note":"partner.com"}',
        None,
    )
    assert_df_equality(actual, check, ignore_row_order=True, ignore_nullable=True)


def test_the_same_person_gets_the_same_token_and_an_address_inside_another_is_not_touched(spark):
    # "a@x.com" is a suffix of "ba@x.com" and a prefix of "a@x.com.au": each is replaced whole.
    actual = redacted(spark, '["ba@x.com","a@x.com","A@x.com.au","a@x.com"]')
    check = expected(spark, f'["{token("ba")}@x.com","{token("a")}@x.com","{token("a")}@x.com.au","{token("a")}@x.com"]')
    assert_df_equality(actual, check, ignore_row_order=True, ignore_nullable=True)


def test_full_keeps_the_record_and_none_drops_it(spark):
    record = '{"SenderEmailAddress":"alice@p.com","RecipientDetails":[{"RecipientDisplayName":"Bob"}]}'
    assert_df_equality(redacted(spark, record, mode="full"), expected(spark, record), ignore_nullable=True)
    assert_df_equality(redacted(spark, record, mode="none"), expected(spark, None), ignore_nullable=True)
    with pytest.raises(ValueError, match="not one of"):
        privacy.source_record(F.col("SourceRecord"), "hashed")
