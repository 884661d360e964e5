"""Own domains derived from the events: owned-thread senders and inbound recipients, with a share."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from partner_hunt.config import ConfigError, config_from_mapping
from partner_hunt.core import own_domains
from partner_hunt.core.options import FinishOptions
from tests.conftest import event


def derived(spark, events_df, min_share=0.2, normalize=False):
    return own_domains.derive_own_domains(events_df, min_share=min_share, normalize=normalize)


def expect(spark, *rows):
    return spark.createDataFrame(list(rows), own_domains.OWN_DOMAINS_DDL)


def test_senders_of_owned_threads_and_recipients_of_inbound_messages(spark, events):
    events_df = events(
        # t1: three owned threads sent by contoso, one inbound to contoso and a partner (group chat).
        event(to=["a@fabrikam.com"], owned=True, sender="u1@contoso.com", msg="m1"),
        event(to=["b@fabrikam.com"], owned=True, sender="u2@contoso.com", msg="m2"),
        event(to=["c@tailspin.com"], owned=True, sender="u3@contoso.com", msg="m3"),
        event(to=["u1@contoso.com", "x@northwind.com"], owned=False, sender="a@fabrikam.com", msg="m4"),
        # t2: one owned thread from its own domain; the inbound one names it once (two addresses).
        event(to=["p@fabrikam.com"], owned=True, sender="me@litware.com", msg="m5", tenant="t2"),
        event(to=["me@litware.com", "you@litware.com"], owned=False, sender="p@fabrikam.com", msg="m6", tenant="t2"),
    )
    # t1: 4 pieces of evidence; contoso in all 4, northwind in 1 (0.25, kept at 0.2), fabrikam as
    # a recipient of an owned thread is no evidence at all.
    assert_df_equality(
        derived(spark, events_df),
        expect(spark, ("t1", "contoso.com", 1.0), ("t1", "northwind.com", 0.25), ("t2", "litware.com", 1.0)),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_partner_below_the_minimum_share_never_becomes_own(spark, events):
    events_df = events(
        event(to=["a@fabrikam.com"], owned=True, sender="u1@contoso.com", msg="m1"),
        event(to=["a@fabrikam.com"], owned=True, sender="u2@contoso.com", msg="m2"),
        event(to=["a@fabrikam.com"], owned=True, sender="u2@contoso.com", msg="m3"),
        event(to=["u1@contoso.com", "x@northwind.com"], owned=False, sender="a@fabrikam.com", msg="m4"),
    )
    assert_df_equality(
        derived(spark, events_df, min_share=0.3),
        expect(spark, ("t1", "contoso.com", 1.0)),
        ignore_nullable=True,
    )


def test_internal_rows_null_flags_and_empty_domains_give_no_evidence(spark, events):
    events_df = events(
        event(to=["u2@contoso.com"], owned=True, sender="u1@CONTOSO.com ", msg="m1"),
        # Inbound but not external: not evidence; null owned flag: not evidence either.
        event(to=["z@fabrikam.com"], owned=False, external=False, sender="a@fabrikam.com", msg="m2"),
        event(to=["z@fabrikam.com"], owned=None, sender="a@fabrikam.com", msg="m3"),
        # Inbound to an address without a domain: evidence with no own domain in it.
        event(to=["nobody"], owned=False, sender="a@fabrikam.com", msg="m4"),
    )
    assert_df_equality(
        derived(spark, events_df, normalize=True),
        expect(spark, ("t1", "contoso.com", 0.5)),
        ignore_nullable=True,
    )


def test_without_sender_addresses_only_inbound_recipients_count(spark, events):
    events_df = events(
        event(to=["a@fabrikam.com"], owned=True, sender="u1@contoso.com", msg="m1"),
        event(to=["u1@contoso.com"], owned=False, sender="a@fabrikam.com", msg="m2"),
    ).drop("SenderEmailAddress")
    assert_df_equality(derived(spark, events_df), expect(spark, ("t1", "contoso.com", 1.0)), ignore_nullable=True)


def test_mapping_and_merge_keep_configured_domains_first():
    from pyspark.sql import Row

    rows = [Row(TenantId="t1", Domain="b.com"), Row(TenantId="t1", Domain="a.com"), Row(TenantId="t2", Domain="c.org")]
    assert own_domains.as_mapping(rows) == {"t1": ["a.com", "b.com"], "t2": ["c.org"]}
    configured = FinishOptions(tenant_exclude={"t1": ("x.com", "a.com")})
    assert configured.with_tenant_domains({"t1": ["a.com", "b.com"], "t2": ["c.org"]}).tenant_exclude == {
        "t1": ("x.com", "a.com", "b.com"),
        "t2": ("c.org",),
    }


def test_own_domains_settings():
    assert config_from_mapping({}).hunt.own_domains is None
    auto = config_from_mapping({"hunt": {"own_domains": "auto"}}).hunt
    assert (auto.own_domains_auto, auto.own_domains_list, auto.apply_own_domains) == (True, (), False)
    listed = config_from_mapping({"hunt": {"own_domains": ["a.com"], "mode": "corrected"}}).hunt
    assert (listed.own_domains_auto, listed.own_domains_list, listed.apply_own_domains) == (False, ("a.com",), True)
    off = config_from_mapping({"hunt": {"own_domains": "off", "own_domains_in_kql": True}}).hunt
    assert (off.own_domains_auto, off.own_domains_list, off.apply_own_domains) == (False, (), True)
    with pytest.raises(ConfigError, match="hunt.own_domains: 'auto' and 'off' stand alone"):
        config_from_mapping({"hunt": {"own_domains": ["auto", "a.com"]}})
    with pytest.raises(ConfigError, match="hunt.own_domains_min_share"):
        config_from_mapping({"hunt": {"own_domains_min_share": 0}})


def test_a_listed_own_domain_is_an_exclusion_where_own_domains_apply():
    kql = config_from_mapping({"hunt": {"own_domains": ["contoso.com"], "exclude_domains": ["x.com"]}})
    assert kql.finish_options().exclude == ("x.com",)
    corrected = config_from_mapping({"hunt": {"own_domains": ["contoso.com", "x.com"], "exclude_domains": ["x.com"], "mode": "corrected"}})
    assert corrected.finish_options().exclude == ("x.com", "contoso.com")
