"""Config: every key validated, unknown keys and wrong types named, flags override YAML."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from partner_hunt.cli import build_parser, resolve_config
from partner_hunt.config import Config, ConfigError, config_from_mapping, load_config, parse_instant, with_overrides


def test_embedded_default_matches_builtin_defaults():
    assert load_config("conf/local.yml") == Config()


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'hunt.mdoe'"):
        config_from_mapping({"hunt": {"mdoe": "kql"}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="hunt.include_ratio: expected true or false"):
        config_from_mapping({"hunt": {"include_ratio": "yes"}})
    with pytest.raises(ConfigError, match="demo.rows: expected a whole number"):
        config_from_mapping({"demo": {"rows": "many"}})
    with pytest.raises(ConfigError, match=r"hunt.exclude_domains\[1\]: expected a string"):
        config_from_mapping({"hunt": {"exclude_domains": ["a.com", 3]}})


def test_bad_mode_and_bad_dates():
    with pytest.raises(ConfigError, match="hunt.mode"):
        config_from_mapping({"hunt": {"mode": "fast"}})
    with pytest.raises(ConfigError, match="hunt.start: '2026-13-01' is not an ISO date"):
        config_from_mapping({"hunt": {"start": "2026-13-01"}})
    with pytest.raises(ConfigError, match="must be after hunt.start"):
        config_from_mapping({"hunt": {"start": "2026-02-01", "end": "2026-01-01"}})


def test_dates_are_utc_and_a_date_alone_is_midnight():
    assert parse_instant("2026-01-31", "k") == datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert parse_instant("2026-01-31T10:00:00+02:00", "k") == datetime(2026, 1, 31, 8, tzinfo=timezone.utc)
    assert parse_instant("2026-01-31T10:00:00Z", "k") == datetime(2026, 1, 31, 10, tzinfo=timezone.utc)
    assert parse_instant("2026-01-31 10:00", "k") == datetime(2026, 1, 31, 10, tzinfo=timezone.utc)


def test_mode_drives_the_switches_unless_set():
    kql = Config().hunt
    assert (kql.effective_normalize_domains, kql.effective_count_messages, kql.effective_dedupe_edits) == (False,) * 3
    corrected = config_from_mapping({"hunt": {"mode": "corrected", "count_messages": False}}).hunt
    assert corrected.effective_normalize_domains and corrected.effective_dedupe_edits
    assert not corrected.effective_count_messages


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("source: a/b\nhunt:\n  mode: corrected\n  exclude_domains: [x.com]\n")
    args = build_parser().parse_args(
        ["run", "--config", str(path), "--mode", "kql", "--exclude-domain", "y.com", "--start", "2026-01-01"]
    )
    config = resolve_config(args)
    assert config.source == "a/b"
    assert config.hunt.mode == "kql"
    assert config.hunt.exclude_domains == ("y.com",)
    assert config.hunt.start == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_override_of_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'hunt.nope'"):
        with_overrides(Config(), {"hunt.nope": 1})


def test_spark_conf_values_become_strings():
    config = config_from_mapping({"spark": {"conf": {"spark.sql.shuffle.partitions": 8, "spark.ui.enabled": False}}})
    assert dict(config.spark.conf) == {"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("hunt: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
