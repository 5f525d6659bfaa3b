"""A Spark standalone cluster on this machine: one master and N workers, as child processes.

::

    with start_local_cluster(work_dir, workers=2) as cluster:
        engine = open_spark_engine(parquet_dir, cluster.master_url, conf=cluster.driver_conf)
        # or, in another process: env=cluster.driver_env() (SPARK_CONF_DIR with spark-defaults.conf)

For the cluster tests and ``benchmarks/national.py --spark-cluster``: it shows that the Spark backend
runs on a real cluster (separate master, worker and executor JVMs talking over the network), on
loopback. It is not a deployment tool: production clusters are started by their operators. The
daemons are pyspark's own (``$SPARK_HOME/bin/spark-class``, with ``SPARK_HOME`` the installed pyspark
package); each runs in its own process group, so :meth:`LocalCluster.stop` ends it with its executors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ClusterError", "LocalCluster", "spark_home", "start_local_cluster"]

# Short-lived JVMs on a small machine: the quick-to-warm C1 compiler and a single-threaded collector.
_QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class ClusterError(RuntimeError):
    """The cluster could not be started; the message includes the daemons' output."""


def spark_home() -> Path:
    """The installed pyspark package, which ships Spark's jars and launch scripts."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalCluster:
    """A running master and its workers; ``master_url`` is ``spark://127.0.0.1:<port>``."""

    master_url: str
    webui_url: str
    work_dir: Path
    executor_memory: str
    cores: int
    quick_jvm: bool = False
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def driver_conf(self) -> dict[str, str]:
        """What a driver on this machine needs to use the cluster: loopback and executors that fit."""
        conf = {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.executor.memory": self.executor_memory,
            # Spark's default of 200 shuffle partitions is for large clusters: a few per core here.
            "spark.sql.shuffle.partitions": str(2 * self.cores),
        }
        if self.quick_jvm:
            conf["spark.executor.extraJavaOptions"] = _QUICK_JVM
            conf["spark.driver.extraJavaOptions"] = _QUICK_JVM
        return conf

    def driver_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a driver process (``sundstat serve``, a benchmark worker): ``SPARK_CONF_DIR``
        with a ``spark-defaults.conf`` holding :attr:`driver_conf` and ``extra``, which the PySpark
        launcher reads."""
        conf_dir = self.work_dir / "driver-conf"
        conf_dir.mkdir(exist_ok=True)
        lines = [f"{key} {value}" for key, value in {**self.driver_conf, **(extra or {})}.items()]
        (conf_dir / "spark-defaults.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return {"SPARK_CONF_DIR": str(conf_dir), "SPARK_LOCAL_IP": "127.0.0.1"}

    def state(self) -> dict[str, object]:
        """The master's status JSON (workers, applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            return dict(json.load(response))

    def alive_workers(self) -> int:
        workers = self.state().get("workers", [])
        assert isinstance(workers, list)
        return sum(1 for w in workers if w.get("state") == "ALIVE")

    def output(self) -> str:
        """The daemons' logs, for error messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs)

    def stop(self) -> None:
        """Stop the workers (and their executors), then the master; SIGKILL what does not stop."""
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _daemon_env(work_dir: Path, quick_jvm: bool) -> dict[str, str]:
    conf_dir = work_dir / "conf"  # empty: no spark-defaults.conf of the user leaks into the daemons
    conf_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_NO_DAEMONIZE": "1",
    }
    if quick_jvm:
        env["SPARK_DAEMON_JAVA_OPTS"] = _QUICK_JVM
    return env


def start_local_cluster(
    work_dir: str | Path,
    *,
    workers: int = 2,
    worker_memory: str = "512m",
    worker_cores: int = 1,
    timeout_s: float = 120.0,
    quick_jvm: bool = False,
) -> LocalCluster:
    """Start a master and ``workers`` workers on loopback with free ports; return once all are ALIVE.

    ``worker_memory`` is also each executor's heap (one executor per worker). ``quick_jvm`` runs
    every JVM (daemons, executors, driver) with the C1 compiler and the serial collector: faster to
    start, slower on long queries (tests, not benchmarks).

    Waits on the master's status JSON (no fixed sleep); on failure or timeout everything started so
    far is stopped and ``ClusterError`` carries the daemons' output.
    """
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ClusterError("Java 17+ is needed for Spark and was not found.")
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    daemon_env = _daemon_env(work, quick_jvm)
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, webui = _free_port(), _free_port()
    cluster = LocalCluster(
        f"spark://127.0.0.1:{port}",
        f"http://127.0.0.1:{webui}",
        work,
        executor_memory=worker_memory,
        cores=workers * worker_cores,
        quick_jvm=quick_jvm,
    )

    def launch(name: str, args: list[str]) -> None:
        log = work / f"{name}.log"
        with log.open("wb") as out:
            cluster.processes.append(
                subprocess.Popen(
                    [spark_class, *args],
                    env=daemon_env,
                    cwd=work,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        cluster.logs.append(log)

    try:
        master = "org.apache.spark.deploy.master.Master"
        launch("master", [master, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)])
        for i in range(workers):
            worker_dir = work / f"worker-{i}"
            worker_dir.mkdir(exist_ok=True)
            launch(
                f"worker-{i}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--webui-port",
                    str(_free_port()),
                    "--cores",
                    str(worker_cores),
                    "--memory",
                    worker_memory,
                    "--work-dir",
                    str(worker_dir),
                    cluster.master_url,
                ],
            )
        _wait_alive(cluster, workers, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_alive(cluster: LocalCluster, workers: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    alive = 0
    while time.monotonic() < deadline:
        dead = [p for p in cluster.processes if p.poll() is not None]
        if dead:
            raise ClusterError(f"a Spark daemon exited with {dead[0].returncode}:\n{cluster.output()}")
        with contextlib.suppress(OSError, ValueError):
            alive = cluster.alive_workers()
            if alive >= workers:
                return
        time.sleep(0.25)
    raise ClusterError(
        f"the Spark master showed {alive} of {workers} workers ALIVE after {timeout_s:g} s:\n{cluster.output()}"
    )
