"""The hunting notebook runs headless against a small demo lake and draws its charts."""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from partner_hunt.core import sample
from partner_hunt.store import io
from partner_hunt.store.locations import TableRef

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "hunting.ipynb"
END = datetime(2026, 3, 15, tzinfo=timezone.utc)


def test_notebook_executes_and_writes_its_charts(spark, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    lake = tmp_path / "lake"
    source = TableRef(str(lake / "message_events"), True)
    io.overwrite(sample.generate_events(spark, 4000, days=7, seed=7, end=END), source)
    out = tmp_path / "charts"
    # The partner-history cell backfills the week's partials: one batch, one commit, not seven.
    config = tmp_path / "notebook.yml"
    config.write_text("hunt:\n  backfill_batch_days: 7\n")
    # The kernel inherits this process's environment: that is how the parameter cell gets them.
    for key, value in {
        "PARTNER_HUNT_SOURCE": source.location,
        "PARTNER_HUNT_OUTPUT": str(lake / "partner_hunt_results"),
        "PARTNER_HUNT_START": "2026-03-08",
        "PARTNER_HUNT_END": "2026-03-15",
        "PARTNER_HUNT_NOTEBOOK_OUT": str(out),
        "PARTNER_HUNT_MASTER": "local[2]",
        "PARTNER_HUNT_CONFIG": str(config),
    }.items():
        monkeypatch.setenv(key, value)
    # A cold JVM for one short job: C1 alone, as for the suite's other child processes (spark_env).
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
    # The kernel must start its own Spark, not think it runs under spark-submit.
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_SECRET", raising=False)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Every cell has its id: nbformat warns today and will refuse the notebook later without them.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbformat.validate(notebook)
    client = nbclient.NotebookClient(
        # The kernel's working directory is the test's: Spark leaves its warehouse folder there.
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))

    for name in ("top_domains.png", "daily_trend.png"):
        png = out / name
        assert png.is_file(), f"{name} was not written"
        # A rendered chart with bars, lines and labels is tens of kilobytes; an empty figure is ~2 KB.
        assert png.stat().st_size > 10_000, f"{name} is only {png.stat().st_size} bytes"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Printed text arrives as streams; rich tables as display data with a text/plain form.
    text = "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert "Top partner domains" in text, text[:2000]
    assert "SampleTeamsMessageIds" in text, text[:2000]
    assert "Partner history: " in text and "New partners" in text, text[-2000:]
    # The notebook's own-domain setting (auto, as the demo) keeps the demo organisation's own
    # domain out of what it shows: the kql results it charts and the partners table.
    output = lake / "partner_hunt_results"
    results = io.read_table(spark, TableRef(str(output), True)).collect()
    assert results and sample.OWN_DOMAIN not in {r.SenderFromDomain for r in results}
    partners = io.read_table(spark, TableRef(f"{output}_partners", True)).collect()
    assert partners and sample.OWN_DOMAIN not in {r.Domain for r in partners}
