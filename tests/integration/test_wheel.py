"""The wheel as Databricks gets it: its metadata, the bundle's paths to it, and its entry point."""

from __future__ import annotations

import email
import subprocess
import sys
import time
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tests.conftest import problem_lines
from tests.integration.spark_cluster import spark_env
from tests.unit.test_bundle import ROOT_FILE, artifact_wheel_dir, relative_paths

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPARK_DISTRIBUTIONS = {"pyspark", "delta-spark"}


@pytest.fixture(scope="module")
def built_wheel() -> Path:
    """Run the bundle artifact's own build command, as `databricks bundle deploy` does."""
    artifact = yaml.safe_load(ROOT_FILE.read_text())["artifacts"]["partner_hunt_wheel"]
    command = artifact["build"].split()
    assert command[0] == "python"
    started = time.time() - 1
    proc = subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT_FILE.parent / artifact["path"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fresh = [w for w in artifact_wheel_dir().glob("partner_hunt-*.whl") if w.stat().st_mtime >= started]
    assert len(fresh) == 1, f"expected one freshly built wheel in {artifact_wheel_dir()}, found {fresh}"
    return fresh[0]


def requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name)).get_all("Requires-Dist") or []


def test_wheel_does_not_reinstall_spark_on_a_databricks_runtime(built_wheel):
    requirements = requires_dist(built_wheel)
    names = lambda reqs: {r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in reqs}  # noqa: E731
    unconditional = [r for r in requirements if "extra ==" not in r]
    assert names(unconditional) == {"pyyaml", "rich"}, unconditional
    # Spark is still there for a laptop, behind the `local` extra.
    local = [r for r in requirements if "extra == \"local\"" in r]
    assert names(local) == SPARK_DISTRIBUTIONS, requirements


def test_every_wheel_path_of_the_bundle_matches_the_built_wheel(built_wheel):
    wheel_paths = [(holder, path) for holder, path, kind in relative_paths() if kind == "wheel"]
    assert len(wheel_paths) >= 4  # window, daily, backfill libraries and the serverless environment
    for holder, path in wheel_paths:
        matches = {p.resolve() for p in holder.parent.glob(path)}
        assert built_wheel.resolve() in matches, f"{holder.name}: {path} does not match {built_wheel}"


def test_wheel_task_sees_a_failed_run(spark, tmp_path, capsys):
    """A python_wheel_task loads the entry point and calls it; only an exception fails the run."""
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "partner-hunt"]
    entry = script.load()
    missing = tmp_path / "no_such_table"
    with pytest.raises(SystemExit) as failed:
        entry(["run", "--source", str(missing), "--output", str(tmp_path / "out"), "--job-run-id", "42"])
    assert failed.value.code == 2
    assert str(missing) in capsys.readouterr().err
    # A bad argument fails the run the same way.
    with pytest.raises(SystemExit) as usage:
        entry(["run", "--trailing-days", "ninety"])
    assert usage.value.code == 2


def test_a_fresh_process_prints_its_one_line_not_the_spark_launch(tmp_path):
    """spark-submit's start-up chatter (Ivy's resolution report for the Delta JARs, on every start)
    is held back: a fresh `partner-hunt` process that fails says only why."""
    missing = tmp_path / "no_such_table"
    argv = [sys.executable, "-m", "partner_hunt.cli", "run", "--source", str(missing), "--output", str(tmp_path / "out"),
            "--master", "local[1]"]
    proc = subprocess.run(argv, env=spark_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    problems = problem_lines(proc.stderr)
    assert len(problems) == 1 and str(missing) in problems[0], proc.stderr[-3000:]
    assert ":: resolution report ::" not in proc.stderr and proc.stdout == ""
