"""The days a refresh recomputes, from the committed days and the changed days (pure logic)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from partner_hunt.commands.refresh import days_to_compute, refresh_window
from partner_hunt.config import config_from_mapping

D = [date(2026, 3, d) for d in range(1, 8)]


def test_unknown_changes_recompute_the_whole_window():
    assert days_to_compute(D[2:5], {D[2], D[3], D[4]}, None) == D[2:5]


def test_missing_days_and_changed_days_are_recomputed():
    window = D[2:6]
    done = {D[0], D[2], D[3]}
    # D[0]: changed and committed (outside the window, its partials must stay right);
    # D[4], D[5]: in the window, never computed; D[6]: changed but neither committed nor in the window.
    assert days_to_compute(window, done, {D[0], D[6]}) == [D[0], D[4], D[5]]


def test_nothing_changed_and_nothing_missing_recomputes_nothing():
    assert days_to_compute(D[2:4], {D[2], D[3]}, set()) == []


def test_the_window_ends_at_the_next_utc_midnight_or_at_hunt_end():
    config = config_from_mapping({"hunt": {"trailing_days": 3}})
    late_evening = datetime(2026, 3, 4, 23, 30, tzinfo=timezone.utc)
    assert refresh_window(config.hunt, late_evening) == (date(2026, 3, 2), date(2026, 3, 5))
    fixed = config_from_mapping({"hunt": {"trailing_days": 3, "end": "2026-03-10"}})
    assert refresh_window(fixed.hunt, late_evening) == (date(2026, 3, 7), date(2026, 3, 10))
