"""Start and stop real Spark processes for the integration tests: a standalone cluster, a Connect server.

Everything binds to loopback on ports picked at start-up, because other Spark jobs may share the
machine; every process runs in its own process group, so `stop()` can end it and its children
(executors, Ivy resolvers) without touching anybody else's JVMs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.1"
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# A machine shared with other test runs can be slow to start JVMs; these are ceilings, not waits.
START_TIMEOUT = float(os.environ.get("PARTNER_HUNT_TEST_START_TIMEOUT", "180"))
# One code cache, larger than the default (see `ConnectServer.start`).
CODE_CACHE = "-XX:-SegmentedCodeCache -XX:ReservedCodeCacheSize=512m"
JOB_TIMEOUT = float(os.environ.get("PARTNER_HUNT_TEST_JOB_TIMEOUT", "900"))


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_env(**extra: str) -> dict[str, str]:
    """The environment for Spark launchers: loopback only, this venv's Python on both sides."""
    env = dict(os.environ)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOCAL_HOSTNAME="localhost",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
    )
    # These JVMs live for one short job and start cold; on two cores the C2 compiler's threads
    # compete with the job. C1 alone took a cluster test from 101 s to 64 s here. Test processes
    # only; the suite's own long-lived session keeps the full JIT, which suits its many queries.
    env.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
    env.update(extra)
    return env


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], None] | None = None) -> None:
    """Poll `check` until it is true; `alive` raises early when a process we wait on has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            if check():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_process(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file, for assertion messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"(no log at {path})"


def package_zip(dest: Path) -> Path:
    """A zip of `lib/partner_hunt`, as `--py-files` ships it to the driver and executors."""
    src = REPO / "lib" / "partner_hunt"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(src.parent))
    return dest


@dataclass
class Process:
    """One launched process and the file its output goes to."""

    name: str
    proc: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail(self.log)}")


def launch(name: str, args: Sequence[str], log: Path, env: dict[str, str], cwd: Path = REPO) -> Process:
    """Start `args` in a new process group, output to `log`."""
    handle = log.open("wb")
    proc = subprocess.Popen(
        list(args), stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )
    handle.close()
    return Process(name, proc, log)


@dataclass
class StandaloneCluster:
    """A Spark standalone master and `workers` workers (1 core, 1 GiB each) on loopback."""

    root: Path
    workers: int = 2
    master_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def worker_processes(self) -> list[Process]:
        return [p for p in self.processes if p.name.startswith("worker")]

    def state(self) -> dict:
        """The master's JSON status page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=10) as resp:
            return json.load(resp)

    def alive_workers(self) -> int:
        return int(self.state().get("aliveworkers", 0))

    def start(self) -> StandaloneCluster:
        spark_class = str(SPARK_HOME / "bin" / "spark-class")
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = spark_env(SPARK_LOG_DIR=str(logs), SPARK_DAEMON_MEMORY="512m")
        self.processes.append(
            launch(
                "master",
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(self.master_port), "--webui-port", str(self.ui_port)],
                logs / "master.log", env,
            )
        )
        master = self.processes[0]
        wait_until(lambda: self.state() is not None, START_TIMEOUT, "the Spark master", master.check_alive)
        for i in range(self.workers):
            work_dir = self.root / f"worker{i}"
            work_dir.mkdir(parents=True, exist_ok=True)
            self.processes.append(
                launch(
                    f"worker{i}",
                    [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                     "--port", str(free_port()), "--webui-port", str(free_port()),
                     "--cores", "1", "--memory", "1g", "--work-dir", str(work_dir), self.url],
                    logs / f"worker{i}.log", env,
                )
            )

        def all_alive() -> None:
            for p in self.processes:
                p.check_alive()

        wait_until(lambda: self.alive_workers() == self.workers, START_TIMEOUT, "the workers to register", all_alive)
        return self

    def executor_pids(self) -> list[int]:
        """Executor JVMs of this cluster only: children of our workers, never other people's."""
        pids = []
        for worker in self.worker_processes:
            out = subprocess.run(
                ["pgrep", "-P", str(worker.proc.pid), "-f", "CoarseGrainedExecutorBackend"],
                capture_output=True, text=True,
            ).stdout
            pids.extend(int(x) for x in out.split())
        return pids

    def executor_logs(self) -> list[Path]:
        """Each executor's stderr, under the workers' work dirs (app-*/<executor id>/stderr)."""
        return sorted(self.root.glob("worker*/app-*/*/stderr"))

    def stop(self) -> None:
        # Workers first, so the master does not reschedule their executors while going down.
        for p in reversed(self.processes):
            stop_process(p.proc)


def spark_submit_args(master: str, conf: dict[str, str], py_files: Path | None, app: Sequence[str]) -> list[str]:
    """`spark-submit` with Delta from Maven (Ivy caches it) and `conf`, running `app`."""
    args = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master, "--packages", DELTA_PACKAGE]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    if py_files is not None:
        args += ["--py-files", str(py_files)]
    return args + list(app)


@dataclass
class ConnectServer:
    """A Spark Connect server (local[2], Delta JARs and extensions) in its own JVM on a free port.

    No Delta Connect plugin: the job needs only Delta's SQL extension over Connect (docs/cluster.md).
    """

    root: Path
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def start(self) -> ConnectServer:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = {
            **DELTA_CONF,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.warehouse.dir": str(self.root / "warehouse"),
            # Every query of a long suite generates classes: JDK 17's segmented code cache gave
            # this server "Out of space in CodeCache for adapters" (a fatal error that stops Spark).
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={self.root} {CODE_CACHE}",
        }
        args = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]",
                "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--packages", DELTA_PACKAGE]
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        self.process = launch("connect-server", args, self.root / "connect-server.log", spark_env(), cwd=self.root)

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True

        wait_until(listening, START_TIMEOUT, "the Spark Connect server", self.process.check_alive)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process.proc)
