"""Builds the SparkSession: local with Delta, a cluster master, an existing session, or Connect."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping

from pyspark.sql import SparkSession

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# Timestamps are UTC instants; printing and date bucketing must not depend on the host's zone.
BASE_CONF = {"spark.sql.session.timeZone": "UTC", "spark.ui.showConsoleProgress": "false"}
CONNECT_SETTABLE = ("spark.sql.", "spark.databricks.delta.")
# Read per session at run time even when Spark's registry does not know the key (yet): Delta's and
# Databricks' settings before their module loads, and Hadoop file-system settings.
SESSION_PREFIXES = ("spark.sql.", "spark.databricks.", "spark.hadoop.")

_log = logging.getLogger("partner_hunt.session")


class JavaMissingError(RuntimeError):
    """No Java 17+ is available for a local Spark."""


def require_java(minimum: int = 17) -> None:
    """Fail in one line, saying how to get Java, when a local Spark cannot start."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    hint = "install OpenJDK 17 (e.g. 'apt-get install openjdk-17-jre-headless' or https://adoptium.net) and put it on PATH or set JAVA_HOME"
    if not java or not os.path.exists(java):
        raise JavaMissingError(f"Java {minimum}+ was not found: {hint}")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaMissingError(f"Java at {java} did not run ({exc}): {hint}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):
            major = int(match.group(2))
        if major < minimum:
            raise JavaMissingError(f"Java {major} found at {java}, but Spark 4 needs Java {minimum}+: {hint}")


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect client session (Databricks serverless, Databricks Connect)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def apply_settings(spark: SparkSession, conf: Mapping[str, str]) -> list[str]:
    """Set each setting on a running session; return the keys it could not take (sorted).

    A setting that already holds the wanted value is left alone. On classic Spark a key counts as
    settable when Spark says it is modifiable, or when it is read per session (`SESSION_PREFIXES`);
    anything else (spark.driver.memory, spark.default.parallelism) only matters at launch, and Spark
    would accept some of those without error while ignoring them. Over Connect the server decides,
    so each key is tried and a refusal caught.
    """
    connect = is_connect(spark)
    refused = []
    for key, value in conf.items():
        value = str(value)
        try:
            if spark.conf.get(key, None) == value:
                continue
        except Exception:  # noqa: BLE001 - an unreadable key is then judged by trying to set it
            pass
        if not connect and not (key.startswith(SESSION_PREFIXES) or spark.conf.isModifiable(key)):
            refused.append(key)
            continue
        try:
            spark.conf.set(key, value)
        except Exception:  # noqa: BLE001 - CANNOT_MODIFY_CONFIG, or a serverless allow-list refusal
            refused.append(key)
    return sorted(refused)


def _extra_jars() -> str | None:
    """Delta JARs fetched by hand (README: offline set-up) take the place of the Ivy resolver."""
    return os.environ.get("PARTNER_HUNT_JARS") or None


class _LaunchChatter(threading.Thread):
    """Relays the JVM's stderr to ours, holding back what it prints while it starts.

    spark-submit prints some fifty lines before the JVM is up: Ivy's resolution report for the
    Delta JARs (on every start, not just the first download), JVM and log4j notices. They bury
    the one table the user came for, so they are dropped once the JVM is up, and shown in full if
    it fails to start, when they say why. What the JVM prints after that reaches stderr as before.
    """

    def __init__(self, read_fd: int):
        super().__init__(name="partner-hunt-jvm-stderr", daemon=True)
        self._read_fd = read_fd
        self._lock = threading.Lock()
        self._held: list[bytes] | None = []

    def run(self) -> None:
        # Keeps reading until the JVM exits, whatever happens to a write: a relay that stopped
        # reading would block the JVM on its next line.
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            for line in iter(pipe.readline, b""):
                with self._lock:
                    if self._held is not None:
                        self._held.append(line)
                        continue
                try:
                    os.write(2, line)
                except OSError:
                    pass

    def release(self, show_held: bool) -> None:
        """From now on relay every line; first write the held ones if `show_held`."""
        with self._lock:
            held, self._held = self._held or [], None
            if show_held:
                for line in held:
                    os.write(2, line)


def _start_jvm_quietly(options: Mapping[str, str]) -> None:
    """Start Spark's JVM (as the builder would, with these options) without its start-up chatter."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    read_fd, write_fd = os.pipe()
    relay = _LaunchChatter(read_fd)
    relay.start()
    try:
        conf = SparkConf(loadDefaults=False).setAll([(k, str(v)) for k, v in options.items()])
        gateway = launch_gateway(conf, popen_kwargs={"stderr": write_fd})
    except BaseException:
        relay.release(show_held=True)
        # The JVM has exited: the rest of what it said is in the pipe, and the relay ends at its end.
        os.close(write_fd)
        write_fd = -1
        relay.join(timeout=5)
        raise
    finally:
        if write_fd >= 0:
            os.close(write_fd)
    relay.release(show_held=False)
    SparkContext._ensure_initialized(gateway=gateway)


def build_session(
    master: str | None = "local[*]",
    app_name: str = "partner-hunt",
    conf: Mapping[str, str] | None = None,
    remote: str | None = None,
) -> SparkSession:
    """Create (or join) the SparkSession for a run.

    Under spark-submit or on Databricks a session already exists and is joined: the master and
    packages come from there, the settings of `conf` that can change at run time are applied to
    it, and one warning names the rest. `remote` gives a Spark Connect session.
    """
    configured = dict(conf or {})
    conf = {**BASE_CONF, **configured}
    if remote:
        builder = SparkSession.builder.remote(remote)
        # A Connect client can only change session (SQL) settings; the server owns the rest
        # (master, memory, UI), and sending those just earns a CANNOT_MODIFY_CONFIG warning each.
        for key, value in conf.items():
            if key.startswith(CONNECT_SETTABLE):
                builder = builder.config(key, value)
        return builder.getOrCreate()

    active = SparkSession.getActiveSession()
    if active is not None:
        # The session (and its time zone) is the caller's: results do not depend on the zone, so
        # only the configured settings are applied, and the ones Spark refuses are named.
        refused = apply_settings(active, configured)
        apply_settings(active, {k: v for k, v in BASE_CONF.items() if k != "spark.sql.session.timeZone"})
        if refused:
            _log.warning(
                "joined an existing Spark session: these settings are fixed when it starts and were not applied: %s",
                ", ".join(refused),
            )
        return active
    # Under spark-submit (which exports the gateway port) or a Databricks runtime, the launcher
    # owns the master and the JARs; the session must not override them.
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT") or os.environ.get("DATABRICKS_RUNTIME_VERSION"))
    if not submitted:
        require_java()
    builder = SparkSession.builder.appName(app_name)
    if master and not submitted:
        builder = builder.master(master)
    for key, value in {**DELTA_CONF, **conf}.items():
        builder = builder.config(key, value)
    jars = _extra_jars()
    if jars:
        builder = builder.config("spark.jars", jars)
    elif not submitted:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    if not submitted and os.environ.get("PARTNER_HUNT_SPARK_LAUNCH_LOG", "") != "1":
        _start_jvm_quietly(builder._options)
    session = builder.getOrCreate()
    # Spark's WARN chatter drowns the one table the user came for; errors still show.
    session.sparkContext.setLogLevel(os.environ.get("PARTNER_HUNT_SPARK_LOG_LEVEL", "ERROR"))
    return session
