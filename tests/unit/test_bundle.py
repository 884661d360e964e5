"""The Databricks bundle is one Databricks would accept, and agrees with the code.

No workspace is reachable from CI, so `databricks bundle validate` cannot run here. Instead every
job is parsed by `databricks.bundles.jobs.Job.from_dict` (Databricks' maintained, typed job model,
which rejects unknown and mistyped fields), every relative path is resolved the way the CLI
resolves it (against the YAML file that holds it), and every task's command line is parsed by the
CLI's own argument parser. tests/integration/test_wheel.py builds the wheel and checks that every
wheel path then matches it.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from partner_hunt.cli import build_parser
from partner_hunt.config import load_config

REPO = Path(__file__).resolve().parents[2]
ROOT_FILE = REPO / "databricks.yml"
# The bundle syncs its root folder to workspace.file_path, so that prefix names a file of the repo.
FILE_PATH = "${workspace.file_path}/"
TRIGGER_DATE = "2026-03-10"
DYNAMIC = {"{{job.run_id}}": "734501", "{{job.trigger.time.iso_date}}": TRIGGER_DATE}
TOP_LEVEL_PERMISSION_LEVELS = {"CAN_VIEW", "CAN_RUN", "CAN_MANAGE"}


def load_bundle() -> tuple[dict, dict[str, Path]]:
    """databricks.yml merged with the files its `include` globs name, and the file each job is in."""
    root = yaml.safe_load(ROOT_FILE.read_text())
    merged = dict(root)
    merged["resources"] = {"jobs": {}}
    job_files: dict[str, Path] = {}
    for pattern in root.get("include", []):
        files = sorted(ROOT_FILE.parent.glob(pattern))
        assert files, f"include {pattern!r} matches no file"
        for path in files:
            part = yaml.safe_load(path.read_text()) or {}
            unknown = set(part) - {"resources", "variables", "targets"}
            assert not unknown, f"{path.name}: unexpected top-level keys {unknown}"
            for name, job in part.get("resources", {}).get("jobs", {}).items():
                assert name not in merged["resources"]["jobs"], f"job {name} defined twice"
                merged["resources"]["jobs"][name] = job
                job_files[name] = path
    return merged, job_files


BUNDLE, JOB_FILES = load_bundle()
JOBS = BUNDLE["resources"]["jobs"]
TARGETS = sorted(BUNDLE["targets"])
VAR = re.compile(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}")


def variables(target: str) -> dict:
    """Each variable's value in `target`: the target's, else the default."""
    values = {k: v.get("default") for k, v in BUNDLE["variables"].items()}
    values.update(BUNDLE["targets"][target].get("variables", {}))
    return values


def resolve_variables(value, target: str = "dev"):
    """Substitute `${var.x}` as the CLI does: a whole-string reference takes the value's type."""
    values = variables(target)
    if isinstance(value, dict):
        return {k: resolve_variables(v, target) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_variables(v, target) for v in value]
    if not isinstance(value, str):
        return value
    for _ in range(5):  # defaults may refer to other variables
        whole = VAR.fullmatch(value)
        if whole:
            name = whole.group(1)
            assert name in values, f"${{var.{name}}} is not declared under variables"
            assert values[name] is not None, f"${{var.{name}}} has no value in target {target}"
            return resolve_variables(values[name], target)

        def text(match: re.Match) -> str:
            name = match.group(1)
            assert name in values, f"${{var.{name}}} is not declared under variables"
            assert values[name] is not None, f"${{var.{name}}} has no value in target {target}"
            return str(values[name])

        value = VAR.sub(text, value)
    return value.replace("${workspace.current_user.short_name}", "someone")


def wheel_tasks(job: dict) -> list[tuple[dict, dict]]:
    """(task, its for_each_task parent or {}) for every task, nested ones included."""
    found = []
    for task in job["tasks"]:
        if "for_each_task" in task:
            found.append((task["for_each_task"]["task"], task["for_each_task"]))
        else:
            found.append((task, {}))
    return found


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
        for ref, value in DYNAMIC.items():
            param = param.replace(ref, value)
        assert "{{" not in param, f"unknown dynamic value reference in {param!r}"
        argv.append(str(resolve_variables(param)))
    return argv


def subparser(command: str) -> argparse.ArgumentParser:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    choices = actions[0].choices
    assert command in choices, f"the bundle runs `partner-hunt {command}`, which the CLI does not have"
    return choices[command]


def is_local_path(value: str) -> bool:
    """A dependency or library entry that names a file of the bundle (not a PyPI requirement)."""
    return value.startswith(("./", "../")) or value.endswith(".whl")


def relative_paths() -> list[tuple[Path, str, str]]:
    """(YAML file, path as written, what it is) for every local path the bundle names."""
    found = [(ROOT_FILE, pattern, "include") for pattern in BUNDLE["include"]]
    found += [(ROOT_FILE, a["path"], "artifact") for a in BUNDLE["artifacts"].values()]
    for name, job in JOBS.items():
        holder = JOB_FILES[name]
        for task, _ in wheel_tasks(job):
            found += [(holder, lib["whl"], "wheel") for lib in task.get("libraries", []) if "whl" in lib]
            if "notebook_task" in task:
                found.append((holder, task["notebook_task"]["notebook_path"], "notebook"))
            if "spark_python_task" in task:
                found.append((holder, task["spark_python_task"]["python_file"], "python_file"))
        for env in job.get("environments", []):
            found += [(holder, dep, "wheel") for dep in env["spec"].get("dependencies", []) if is_local_path(dep)]
    return found


def artifact_wheel_dir() -> Path:
    """Where `databricks bundle deploy` writes the wheel: the artifact's build command's --wheel-dir."""
    artifact = BUNDLE["artifacts"]["partner_hunt_wheel"]
    build = shlex.split(artifact["build"])
    assert build[:4] == ["python", "-m", "pip", "wheel"], "the artifact builds with pip wheel"
    wheel_dir = build[build.index("--wheel-dir") + 1]
    return (ROOT_FILE.parent / artifact["path"] / wheel_dir).resolve()


ALL_TASKS = [(name, task, for_each) for name, job in JOBS.items() for task, for_each in wheel_tasks(job)]
TASK_IDS = [f"{n}:{t['task_key']}" for n, t, _ in ALL_TASKS]


def test_bundle_defines_classic_and_serverless_daily_jobs_and_two_targets():
    assert set(JOBS) == {"partner_hunt_window", "partner_hunt_daily", "partner_hunt_daily_serverless", "partner_hunt_backfill"}
    assert TARGETS == ["dev", "prod"]
    for target in BUNDLE["targets"].values():
        assert {"catalog", "schema"} <= set(target["variables"])
    assert "for_each_task" in JOBS["partner_hunt_backfill"]["tasks"][0]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("job_name", sorted(JOBS))
def test_every_job_passes_the_databricks_job_model(job_name, target):
    from databricks.bundles.jobs import Job

    Job.from_dict(copy.deepcopy(JOBS[job_name]))  # as written, with ${var.*} references
    Job.from_dict(resolve_variables(copy.deepcopy(JOBS[job_name]), target))  # as deployed


def test_the_job_model_rejects_unknown_and_mistyped_fields():
    """The validator above is only worth having if it is strict: a typo or a wrong type must fail."""
    from databricks.bundles.jobs import Job

    typo = copy.deepcopy(JOBS["partner_hunt_daily"])
    typo["tasks"][0]["python_wheel_task"]["entrypoint"] = typo["tasks"][0]["python_wheel_task"].pop("entry_point")
    with pytest.raises(ValueError, match="entrypoint"):
        Job.from_dict(typo)
    wrong_type = copy.deepcopy(JOBS["partner_hunt_daily"])
    wrong_type["timeout_seconds"] = "two hours"
    with pytest.raises(ValueError):
        Job.from_dict(wrong_type)
    wrong_metric = copy.deepcopy(JOBS["partner_hunt_daily"])
    wrong_metric["health"]["rules"][0]["metric"] = "RUN_DURATION"
    with pytest.raises(ValueError, match="RUN_DURATION"):
        Job.from_dict(wrong_metric)


@pytest.mark.parametrize("holder,path,kind", relative_paths(), ids=lambda v: str(v.name) if isinstance(v, Path) else str(v))
def test_every_relative_path_resolves_against_its_own_yaml_file(holder, path, kind):
    assert not path.startswith("/"), f"{holder.name}: {path} is absolute; bundle paths are relative to the file"
    resolved = holder.parent / path
    if kind == "wheel":
        # The wheel exists only after a build (tests/integration/test_wheel.py builds it): here the
        # glob must point into the folder the artifact's build writes to.
        assert resolved.name.endswith(".whl") and "*" in resolved.name
        assert resolved.parent.resolve() == artifact_wheel_dir(), (
            f"{holder.name}: {path} looks in {resolved.parent.resolve()}, the wheel is built into {artifact_wheel_dir()}"
        )
    elif kind == "include":
        assert list(holder.parent.glob(path)), f"include {path} matches nothing"
    else:
        assert resolved.exists(), f"{holder.name}: {path} resolves to {resolved}, which does not exist"


def test_the_wheel_is_built_into_the_repos_dist_folder():
    artifact = BUNDLE["artifacts"]["partner_hunt_wheel"]
    assert artifact["type"] == "whl"
    assert (ROOT_FILE.parent / artifact["path"] / "pyproject.toml").is_file()
    assert artifact_wheel_dir() == REPO / "dist"


@pytest.mark.parametrize("job_name,task,for_each", ALL_TASKS, ids=TASK_IDS)
def test_wheel_task_calls_an_existing_entry_point_with_valid_flags(job_name, task, for_each):
    wheel = task["python_wheel_task"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert wheel["package_name"].replace("_", "-") == project["name"]
    assert (REPO / "lib" / wheel["package_name"] / "__init__.py").is_file()
    assert project["scripts"][wheel["entry_point"]] == "partner_hunt.cli:main"

    argv = resolve_parameters(wheel["parameters"], JOBS[job_name], for_each)
    sub = subparser(argv[0])
    known = {opt for action in sub._actions for opt in action.option_strings}
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in known, f"{job_name}: `partner-hunt {argv[0]}` has no flag {flag}"
    # argparse exits on a bad value (a non-integer --trailing-days, an unknown --mode).
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    # Every run is findable from the Databricks run that started it.
    assert args.job_run_id == DYNAMIC["{{job.run_id}}"]


@pytest.mark.parametrize("job_name,task,for_each", ALL_TASKS, ids=TASK_IDS)
def test_config_files_named_by_the_bundle_exist_and_load(job_name, task, for_each):
    argv = resolve_parameters(task["python_wheel_task"]["parameters"], JOBS[job_name], for_each)
    config_arg = argv[argv.index("--config") + 1]
    # workspace.file_path already starts with /Workspace; prefixing it again earns a warning per deploy.
    assert config_arg.startswith(FILE_PATH), f"{config_arg} is not a file uploaded with the bundle"
    config = load_config(ROOT_FILE.parent / config_arg.removeprefix(FILE_PATH))
    assert config.spark.master is None, "on Databricks the session's master comes from the cluster"
    for name in (config.source, config.output, *(v for v in vars(config.state).values() if v)):
        assert re.fullmatch(r"\w+\.\w+\.\w+", name), f"{name} is not a Unity Catalog three-part name"


def test_every_target_resolves_the_table_names_to_three_parts():
    for target in TARGETS:
        for text in ("${var.source_table}", "${var.catalog}.${var.schema}.partner_hunt_results"):
            assert re.fullmatch(r"\w+\.\w+\.\w+", resolve_variables(text, target)), (target, text)


@pytest.mark.parametrize("job_name", sorted(JOBS))
def test_every_job_fails_loudly_and_is_bounded_in_time(job_name):
    job = resolve_variables(JOBS[job_name])
    assert job["email_notifications"]["on_failure"], f"{job_name}: nobody hears of a failed run"
    assert job["timeout_seconds"] > 0
    rules = {r["metric"]: r for r in job["health"]["rules"]}
    assert rules["RUN_DURATION_SECONDS"]["op"] == "GREATER_THAN"
    # The warning must come before the timeout kills the run, or it says nothing new.
    assert 0 < rules["RUN_DURATION_SECONDS"]["value"] < job["timeout_seconds"]
    assert job["email_notifications"]["on_duration_warning_threshold_exceeded"]


def test_classic_daily_job_runs_on_dbr_17_3_lts():
    daily = resolve_variables(JOBS["partner_hunt_daily"], "prod")
    (cluster,) = daily["job_clusters"]
    assert cluster["new_cluster"]["spark_version"] == "17.3.x-scala2.13"
    assert cluster["new_cluster"]["data_security_mode"] in {"SINGLE_USER", "USER_ISOLATION", "DATA_SECURITY_MODE_DEDICATED", "DATA_SECURITY_MODE_STANDARD"}
    for task, _ in wheel_tasks(daily):
        assert task["job_cluster_key"] == cluster["job_cluster_key"]
        assert {"whl": "../dist/*.whl"} in task["libraries"]


def test_serverless_daily_job_installs_the_wheel_through_its_environment():
    serverless = JOBS["partner_hunt_daily_serverless"]
    (env,) = serverless["environments"]
    assert env["spec"]["dependencies"] == ["../dist/*.whl"]
    assert env["spec"]["environment_version"] == "4", "serverless environment 4 is the Spark 4.0 line"
    assert "job_clusters" not in serverless
    for task, _ in wheel_tasks(serverless):
        assert task["environment_key"] == env["environment_key"]
        assert not {"job_cluster_key", "new_cluster", "existing_cluster_id", "libraries"} & set(task)
    # The same command as the classic job, so the two are interchangeable.
    classic = JOBS["partner_hunt_daily"]
    assert serverless["tasks"][0]["python_wheel_task"] == classic["tasks"][0]["python_wheel_task"]
    assert serverless["parameters"] == classic["parameters"]
    # Never both on a schedule: they write the same tables.
    assert {classic["schedule"]["pause_status"], serverless["schedule"]["pause_status"]} == {"PAUSED", "UNPAUSED"}


@pytest.mark.parametrize("job_name", ["partner_hunt_daily", "partner_hunt_daily_serverless"])
def test_daily_window_is_the_readmes_90_days_ending_at_the_trigger_date(job_name):
    job = JOBS[job_name]
    argv = resolve_parameters(job["tasks"][0]["python_wheel_task"]["parameters"], job, {})
    args = build_parser().parse_args(argv)
    assert args.incremental and args.trailing_days == 90
    # A repair or a rerun keeps its trigger time, so it recomputes the same window.
    assert args.end == TRIGGER_DATE
    assert "--trailing-days 90" in (REPO / "README.md").read_text()


def test_prod_runs_as_a_service_principal_from_its_own_folder_with_permissions():
    prod = BUNDLE["targets"]["prod"]
    assert prod["mode"] == "production"
    assert set(prod["run_as"]) == {"service_principal_name"}
    assert prod["run_as"]["service_principal_name"] == "${var.service_principal}"
    assert "default" not in BUNDLE["variables"]["service_principal"], "prod must name its principal"
    root = prod["workspace"]["root_path"]
    assert root.startswith("/Workspace/Users/${var.service_principal}/"), root
    assert "/Shared/" not in root
    levels = {p["level"] for p in prod["permissions"]}
    assert levels <= TOP_LEVEL_PERMISSION_LEVELS and levels
    for grant in prod["permissions"]:
        assert len({"user_name", "group_name", "service_principal_name"} & set(grant)) == 1
    assert BUNDLE["targets"]["dev"]["mode"] == "development"
