"""Locations compared as locations, a bare name that is a folder here, and config values that are
refused rather than read as something else (NaN, a blank tenant id, YAML 1.1 numbers)."""

from __future__ import annotations

import pytest

from partner_hunt.config import config_from_mapping, load_config
from partner_hunt.store import io
from partner_hunt.store.locations import Locations, TableNotFoundError, TableRef, normal_location, source_identity
from partner_hunt.store.partials_table import PartialsMismatchError, check_partials_source
from partner_hunt.validate import ConfigError


def locations_for(source) -> Locations:
    return Locations.from_config(config_from_mapping({"source": str(source), "output": "/tmp/nowhere/results"}))


# --- the partials' source, compared as a location


def test_a_source_given_through_a_link_is_the_same_source(tmp_path):
    real = tmp_path / "events"
    real.mkdir()
    link = tmp_path / "events_link"
    link.symlink_to(real, target_is_directory=True)
    # Markers written through the folder, read back through the link, and the other way round.
    check_partials_source([str(real)], locations_for(link))
    check_partials_source([str(link), f"file:{real}/"], locations_for(real))
    assert normal_location(f"file://{link}/") == normal_location(str(real)) == str(real.resolve())
    # The quarantine's row key names the source the same way.
    assert source_identity(str(link)) == source_identity(str(real)) == str(real.resolve())
    assert source_identity("main.sec.Events") == "main.sec.Events"


def test_partials_of_another_folder_are_still_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(PartialsMismatchError, match=f"computed from source '{tmp_path / 'a'}'"):
        check_partials_source([str(tmp_path / "a")], locations_for(tmp_path / "b"))


def test_catalog_sources_are_compared_by_name_as_before():
    check_partials_source(["main.sec.events"], locations_for("main.sec.events"))
    with pytest.raises(PartialsMismatchError, match="'main.sec.other'"):
        check_partials_source(["main.sec.other"], locations_for("main.sec.events"))


# --- a bare name that is no table but a folder in the working directory


def test_reading_a_bare_name_that_is_a_folder_here_says_how_to_read_the_folder(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src6_unit").mkdir()
    with pytest.raises(TableNotFoundError) as raised:
        io.read_table(spark, TableRef.parse("src6_unit"))
    assert str(raised.value) == (
        "table 'src6_unit' does not exist; a folder './src6_unit' exists here: give a path as ./src6_unit to read it"
    )
    with pytest.raises(TableNotFoundError) as raised:
        io.read_table(spark, TableRef.parse("no_such_table_or_folder"))
    assert str(raised.value) == "table 'no_such_table_or_folder' does not exist"


# --- config values


def write_yaml(tmp_path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf"])
def test_a_float_setting_that_is_not_finite_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match=r"^alerts\.min_ratio: expected a finite number"):
        load_config(write_yaml(tmp_path, f"alerts:\n  min_ratio: {value}\n"))


@pytest.mark.parametrize(
    "key", ["alerts.min_ratio", "alerts.spike_factor", "hunt.own_domains_min_share", "quality.max_bad_fraction"]
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_every_float_setting_refuses_nan_and_inf(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"^{section}\.{name}: expected a finite number"):
        config_from_mapping({section: {name: value}})


@pytest.mark.parametrize("tenant", ["", "   ", None])
def test_a_blank_tenant_id_is_refused(tenant):
    with pytest.raises(ConfigError, match=r"^tenants\.exclude_domains: a key must not be empty"):
        config_from_mapping({"tenants": {"exclude_domains": {"t1": ["a.com"], tenant: ["b.com"]}}})


def test_a_blank_tenant_id_in_yaml_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^tenants\.exclude_domains: a key must not be empty, got ''"):
        load_config(write_yaml(tmp_path, "tenants:\n  exclude_domains:\n    '': [b.com]\n"))


@pytest.mark.parametrize("value", ["1_000", "1:30", "0b11", "1_0.5"])
def test_yaml_1_1_numbers_stay_strings_and_are_refused(tmp_path, value):
    with pytest.raises(ConfigError, match=rf"^hunt\.top: expected a whole number, got '{value}'"):
        load_config(write_yaml(tmp_path, f"hunt:\n  top: {value}\n"))


@pytest.mark.parametrize(("value", "top"), [("1000", 1000), ("+7", 7), ("010", 10), ("0o17", 15), ("0x1F", 31)])
def test_yaml_1_2_integers_are_read(tmp_path, value, top):
    assert load_config(write_yaml(tmp_path, f"hunt:\n  top: {value}\n")).hunt.top == top


@pytest.mark.parametrize(("value", "share"), [("0.25", 0.25), (".5", 0.5), ("1e-1", 0.1), ("1", 1.0)])
def test_yaml_1_2_floats_are_read(tmp_path, value, share):
    assert load_config(write_yaml(tmp_path, f"hunt:\n  own_domains_min_share: {value}\n")).hunt.own_domains_min_share == share


def test_a_yaml_1_1_float_stays_a_string_and_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^alerts\.spike_factor: expected a number, got '1_000.5'"):
        load_config(write_yaml(tmp_path, "alerts:\n  spike_factor: 1_000.5\n"))
