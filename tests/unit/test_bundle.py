"""The Databricks bundle agrees with the code: its entry point, subcommands, flags and config files exist.

No workspace is reachable from CI, so `databricks bundle validate` cannot run here; this test
catches the drift that it would not catch anyway: a renamed flag or config key breaks the jobs
only when they run.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from partner_hunt.cli import build_parser
from partner_hunt.config import load_config

REPO = Path(__file__).resolve().parents[2]
BUNDLE_FILES_PREFIX = "/Workspace${workspace.file_path}/"


def load_bundle() -> dict:
    """databricks.yml merged with the files its `include` globs name (resources are per-file maps)."""
    root = yaml.safe_load((REPO / "databricks.yml").read_text())
    merged = dict(root)
    merged["resources"] = {"jobs": {}}
    for pattern in root.get("include", []):
        files = sorted(REPO.glob(pattern))
        assert files, f"include {pattern!r} matches no file"
        for path in files:
            part = yaml.safe_load(path.read_text()) or {}
            unknown = set(part) - {"resources", "variables", "targets"}
            assert not unknown, f"{path.name}: unexpected top-level keys {unknown}"
            for name, job in part.get("resources", {}).get("jobs", {}).items():
                assert name not in merged["resources"]["jobs"], f"job {name} defined twice"
                merged["resources"]["jobs"][name] = job
    return merged


BUNDLE = load_bundle()
JOBS = BUNDLE["resources"]["jobs"]


def wheel_tasks(job: dict) -> list[tuple[dict, dict]]:
    """(task, its for_each_task parent or {}) for every task, nested ones included."""
    found = []
    for task in job["tasks"]:
        if "for_each_task" in task:
            found.append((task["for_each_task"]["task"], task["for_each_task"]))
        else:
            found.append((task, {}))
    return found


def resolve_variables(text: str, target: str = "dev") -> str:
    """Substitute `${var.x}` with the target's value, else the default, as the CLI would."""
    variables = {k: v.get("default") for k, v in BUNDLE["variables"].items()}
    variables.update(BUNDLE["targets"][target].get("variables", {}))

    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in variables, f"${{var.{name}}} is not declared under variables"
        assert variables[name] is not None, f"${{var.{name}}} has no value in target {target}"
        return str(variables[name])

    for _ in range(5):  # defaults may refer to other variables
        text = re.sub(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}", value, text)
    text = text.replace("${workspace.current_user.short_name}", "someone")
    return text


def resolve_parameters(params: list[str], job: dict, for_each: dict) -> list[str]:
    """The argv a run would get: job parameters at their defaults, for-each inputs at the first item."""
    defaults = {p["name"]: str(p["default"]) for p in job.get("parameters", [])}
    item = {}
    if for_each:
        inputs = re.fullmatch(r"\{\{job\.parameters\.(\w+)\}\}", for_each["inputs"])
        assert inputs, "for_each_task inputs should come from a job parameter"
        item = json.loads(defaults[inputs.group(1)])[0]
    argv = []
    for param in params:
        for name in re.findall(r"\{\{job\.parameters\.(\w+)\}\}", param):
            assert name in defaults, f"{{{{job.parameters.{name}}}}} is not a parameter of the job"
            param = param.replace(f"{{{{job.parameters.{name}}}}}", defaults[name])
        for name in re.findall(r"\{\{input\.(\w+)\}\}", param):
            assert name in item, f"{{{{input.{name}}}}} is not a key of the for-each inputs"
            param = param.replace(f"{{{{input.{name}}}}}", str(item[name]))
        argv.append(resolve_variables(param))
    return argv


def subparser(command: str) -> argparse.ArgumentParser:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    choices = actions[0].choices
    assert command in choices, f"the bundle runs `partner-hunt {command}`, which the CLI does not have"
    return choices[command]


ALL_TASKS = [(name, task, for_each) for name, job in JOBS.items() for task, for_each in wheel_tasks(job)]


def test_bundle_defines_the_three_jobs_and_two_targets():
    assert {"partner_hunt_window", "partner_hunt_daily", "partner_hunt_backfill"} <= set(JOBS)
    assert set(BUNDLE["targets"]) == {"dev", "prod"}
    for target in BUNDLE["targets"].values():
        assert {"catalog", "schema"} <= set(target["variables"])
    assert JOBS["partner_hunt_daily"]["schedule"]["quartz_cron_expression"]
    assert "for_each_task" in JOBS["partner_hunt_backfill"]["tasks"][0]


@pytest.mark.parametrize("job_name,task,for_each", ALL_TASKS, ids=[f"{n}:{t['task_key']}" for n, t, _ in ALL_TASKS])
def test_wheel_task_calls_an_existing_entry_point_with_valid_flags(job_name, task, for_each):
    wheel = task["python_wheel_task"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert wheel["package_name"].replace("_", "-") == project["name"]
    assert (REPO / "lib" / wheel["package_name"] / "__init__.py").is_file()
    assert project["scripts"][wheel["entry_point"]] == "partner_hunt.cli:main"
    assert {"whl": "./dist/*.whl"} in task["libraries"]

    argv = resolve_parameters(wheel["parameters"], JOBS[job_name], for_each)
    sub = subparser(argv[0])
    known = {opt for action in sub._actions for opt in action.option_strings}
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in known, f"{job_name}: `partner-hunt {argv[0]}` has no flag {flag}"
    # argparse exits on a bad value (a non-integer --trailing-days, an unknown --mode).
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


@pytest.mark.parametrize("job_name,task,for_each", ALL_TASKS, ids=[f"{n}:{t['task_key']}" for n, t, _ in ALL_TASKS])
def test_config_files_named_by_the_bundle_exist_and_load(job_name, task, for_each):
    argv = resolve_parameters(task["python_wheel_task"]["parameters"], JOBS[job_name], for_each)
    config_arg = argv[argv.index("--config") + 1]
    # The bundle uploads the repo to workspace.file_path; the job reads the file from there.
    assert config_arg.startswith(BUNDLE_FILES_PREFIX), f"{config_arg} is not a file uploaded with the bundle"
    config = load_config(REPO / config_arg.removeprefix(BUNDLE_FILES_PREFIX))
    assert config.spark.master is None, "on Databricks the session's master comes from the cluster"
    for name in (config.source, config.output, *(v for v in vars(config.state).values() if v)):
        assert re.fullmatch(r"\w+\.\w+\.\w+", name), f"{name} is not a Unity Catalog three-part name"


def test_every_target_resolves_the_table_names_to_three_parts():
    for target in BUNDLE["targets"]:
        for text in ("${var.source_table}", "${var.catalog}.${var.schema}.partner_hunt_results"):
            assert re.fullmatch(r"\w+\.\w+\.\w+", resolve_variables(text, target)), (target, text)


def test_wheel_artifact_builds_from_this_project():
    artifact = BUNDLE["artifacts"]["partner_hunt_wheel"]
    assert artifact["type"] == "whl"
    assert (REPO / artifact["path"] / "pyproject.toml").is_file()
    assert "dist" in artifact["build"]
