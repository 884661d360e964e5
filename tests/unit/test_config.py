"""Config: every key validated, unknown keys and wrong types named, flags override YAML."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from partner_hunt.cli import build_parser, resolve_config
from partner_hunt.config import Config, ConfigError, config_from_mapping, load_config, with_overrides
from partner_hunt.validate import parse_instant


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


def test_output_flags_turn_the_analyst_outputs_off_and_on_and_only_where_there_are_any(tmp_path, capsys):
    path = tmp_path / "c.yml"
    path.write_text("evidence:\n  enabled: false\n")
    assert resolve_config(build_parser().parse_args(["run", "--config", str(path)])).evidence.enabled is False
    assert resolve_config(build_parser().parse_args(["run", "--config", str(path), "--evidence"])).evidence.enabled is True
    hunt_only = resolve_config(build_parser().parse_args(["backfill", "--no-evidence", "--no-alerts"]))
    assert (hunt_only.evidence.enabled, hunt_only.alerts.enabled) == (False, False)
    # `diff` writes no analyst outputs: a flag it would ignore is refused instead.
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["diff", "--no-alerts"])
    assert refused.value.code == 2 and "--no-alerts" in capsys.readouterr().err


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


def test_a_yaml_window_is_replaced_by_a_flag_window_as_a_whole(tmp_path):
    """Flags are merged before validation: a March window replaces a January-February one."""
    path = tmp_path / "c.yml"
    path.write_text("hunt:\n  start: 2026-01-01\n  end: 2026-02-01\n")
    args = build_parser().parse_args(["run", "--config", str(path), "--start", "2026-03-01", "--end", "2026-04-01"])
    config = resolve_config(args)
    assert (config.hunt.start, config.hunt.end) == (
        datetime(2026, 3, 1, tzinfo=timezone.utc),
        datetime(2026, 4, 1, tzinfo=timezone.utc),
    )
    # A flag end before the YAML start is still refused, naming both keys.
    bad = build_parser().parse_args(["run", "--config", str(path), "--end", "2025-12-01"])
    with pytest.raises(ConfigError, match="must be after hunt.start"):
        resolve_config(bad)


def test_backfill_trailing_days_flag_and_key_are_one_setting(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("hunt:\n  backfill_trailing_days: 7\n  trailing_days: 90\n")
    from_yaml = resolve_config(build_parser().parse_args(["backfill", "--config", str(path)]))
    assert (from_yaml.hunt.backfill_trailing_days, from_yaml.hunt.trailing_days) == (7, 90)
    from_flag = resolve_config(build_parser().parse_args(["backfill", "--config", str(path), "--trailing-days", "3"]))
    assert (from_flag.hunt.backfill_trailing_days, from_flag.hunt.trailing_days) == (3, 90)
    refresh = resolve_config(build_parser().parse_args(["run", "--config", str(path), "--trailing-days", "30"]))
    assert (refresh.hunt.backfill_trailing_days, refresh.hunt.trailing_days) == (7, 30)


@pytest.mark.parametrize("text", ["yes", "on", "off", "no", "y"])
def test_yaml_1_1_booleans_are_strings(tmp_path, text):
    path = tmp_path / "c.yml"
    path.write_text(f"hunt:\n  include_ratio: {text}\n")
    with pytest.raises(ConfigError, match=f"hunt.include_ratio: expected true or false, got '{text}'"):
        load_config(path)


def test_a_tenant_named_on_stays_a_tenant(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("tenants:\n  exclude_domains: {on: [a.com], 'True': [b.com]}\n")
    assert dict(load_config(path).tenants.exclude_domains) == {"on": ("a.com",), "True": ("b.com",)}


def test_diff_has_no_mode_flag():
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["diff", "--mode", "kql"])
    assert exited.value.code == 2


def test_notebook_parameters_come_from_widgets_else_the_environment(monkeypatch):
    from partner_hunt.notebook import widget_or_env

    class Widgets:
        def __init__(self):
            self.values = {}

        def text(self, name, default):
            self.values.setdefault(name, default)

        def get(self, name):
            return self.values[name]

    monkeypatch.setenv("PH_TEST_START", "2026-03-01")
    assert widget_or_env(None, "start", "PH_TEST_START", "") == "2026-03-01"
    assert widget_or_env(None, "end", "PH_TEST_END_UNSET", "2026-04-01") == "2026-04-01"
    widgets = Widgets()
    widgets.values["start"] = "2026-05-01"  # a job parameter set on Databricks wins
    assert widget_or_env(widgets, "start", "PH_TEST_START", "") == "2026-05-01"
    assert widget_or_env(widgets, "mode", "PH_TEST_MODE_UNSET", "kql") == "kql"
