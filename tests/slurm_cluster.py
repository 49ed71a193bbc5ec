"""A real single-node SLURM cluster that tests and benchmarks start on this machine and tear down.

`ensure_installed()` installs Debian's SLURM (slurm-wlm 22.05 on bookworm) as root; `single_node_slurm(workdir)`
starts munged, MariaDB + slurmdbd (so that `sacct`, which submitit polls for job states, works), slurmctld and
slurmd, all with their files in `workdir` (sockets and the slurmd spool in a short directory under /tmp), yields a
`SlurmCluster` and stops the daemons it started on exit. It needs root (slurmd does).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PARTITION = "debug"
CLUSTER_NAME = "autonba"
# executable -> Debian package: the smallest set (`slurm-wlm` only adds a metapackage on top)
CORE_PACKAGES = {"slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "munged": "munge"}
# `sacct` needs slurmdbd, which needs MySQL/MariaDB (the server alone, not `mariadb-server`, which pulls perl & co)
ACCOUNTING_PACKAGES = {"slurmdbd": "slurmdbd", "mariadbd": "mariadb-server-core"}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MARKER = "AUTONBA_SLURM_CLUSTER"  # set in the daemons' environment: finds their leftover job steps at exit
# a requeued job waits this long before it starts again (SLURM's default 120 s); also the job step credentials' life
CRED_EXPIRE_S = 10
_JOB_ID_STRIDE = 1_000_000  # each cluster of a process numbers its jobs from its own FirstJobId
_started = 0  # clusters started by this process (submitit's job-state cache is per process, keyed by job id)


def _path() -> str:
    return f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}".strip(":")


def _which(exe: str) -> str | None:
    return shutil.which(exe, path=f"{SYSTEM_PATH}:{os.environ.get('PATH', '')}")


def _missing_packages(accounting: bool) -> list[str]:
    needed = {**CORE_PACKAGES, **(ACCOUNTING_PACKAGES if accounting else {})}
    return sorted({pkg for exe, pkg in needed.items() if _which(exe) is None})


def ensure_installed(accounting: bool = True) -> str | None:
    """Installs the SLURM (and, for `accounting`, slurmdbd + MariaDB) Debian packages if missing.

    Returns None when SLURM can run here, else a one-line reason (for `pytest.skip`). The packages' own services
    (munge, slurmctld... under an init system) are never used: `single_node_slurm` starts its own daemons.
    """
    if not sys.platform.startswith("linux"):
        return f"a single-node SLURM needs Linux, not {sys.platform}"
    missing = _missing_packages(accounting)
    if missing and os.geteuid() != 0:
        return f"SLURM is not installed (missing {' '.join(missing)}) and installing it needs root"
    if missing:
        apt = _which("apt-get")
        if apt is None:
            return f"SLURM is not installed (missing {' '.join(missing)}) and there is no apt-get"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": _path()}
        install = [apt, "install", "-y", "-q", "--no-install-recommends", *missing]
        proc = _run_quiet(install, env)
        if proc.returncode != 0:  # stale or absent package lists: update once and retry
            _run_quiet([apt, "update", "-q"], env)
            proc = _run_quiet(install, env)
        if proc.returncode != 0:
            last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
            return f"apt-get install {' '.join(missing)} failed ({proc.returncode}): {last}"
        if still := _missing_packages(accounting):
            return f"installed but still missing: {' '.join(still)}"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs as their user; not root"
    return None


def _run_quiet(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, stdout=f"{cmd[1]} timed out")


@dataclass(frozen=True)
class SlurmCluster:
    """A running single-node cluster. `env` is a full environment for subprocesses (SLURM_CONF, PATH set);
    while the context is open `os.environ["SLURM_CONF"]` points at it too, for submitit."""

    workdir: Path
    conf: Path
    env: dict[str, str]
    partition: str
    node: str
    cpus: int
    memory_mb: int
    log_dir: Path
    accounting: bool

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """Runs a SLURM command (`squeue`, `scancel`, `sacct`...) against this cluster; returns its stdout."""
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def logs_tail(self, lines: int = 20) -> str:
        """The last lines of every daemon log, for error messages."""
        return _logs_tail(self.log_dir, lines)


@contextmanager
def single_node_slurm(
    workdir: Path,
    cpus: int | None = None,
    memory_mb: int | None = None,
    accounting: bool = True,
    timeout_s: float = 60,
) -> Iterator[SlurmCluster]:
    """Starts a single-node SLURM (one partition `debug` with this host as its only node) and stops it on exit.

    `workdir` (new or empty) gets slurm.conf, the state, the database and log/. `cpus`/`memory_mb` default to
    this machine's (any value works: slurmd runs with config_overrides). Raises RuntimeError (with the daemons'
    log tails) if the node is not idle within `timeout_s`, or if a slurmctld already runs on this machine.
    Without `accounting` no slurmdbd/MariaDB is started and `sacct` fails, so submitit only learns a job's end
    from its result pickle (a job cancelled or killed by SLURM then reads as UNKNOWN and never as done).
    """
    global _started
    if os.geteuid() != 0:
        raise RuntimeError("single_node_slurm needs root (slurmd starts the jobs)")
    if running := running_slurmctld():
        raise RuntimeError(f"a slurmctld is already running on this machine (pid {running[0]}); stop it first")
    workdir = Path(workdir).resolve()
    log_dir = workdir / "log"
    for sub in ("log", "state", "munge", "db"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "munge").chmod(0o700)  # munged refuses a key or log in a directory others can write
    node = socket.gethostname().split(".")[0]
    cpus = cpus or len(os.sched_getaffinity(0))
    memory_mb = memory_mb or _total_memory_mb()
    ports = _free_ports(3)  # slurmctld, slurmd, slurmdbd
    first_job_id = 1 + (_started % 60) * _JOB_ID_STRIDE  # MaxJobId is 67043328
    _started += 1
    conf = workdir / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": _path()}
    daemons = _Daemons(log_dir, {**env, _MARKER: str(workdir)})
    old_conf = os.environ.get("SLURM_CONF")
    cluster = SlurmCluster(workdir, conf, env, PARTITION, node, cpus, memory_mb, log_dir, accounting)
    # unix sockets (108-byte path limit; munged wants every parent of its socket executable by all): short dir
    run_dir = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    munge_socket = run_dir / "munge.socket"
    try:
        run_dir.chmod(0o755)
        (run_dir / "spool").mkdir()
        conf.write_text(_slurm_conf(workdir, run_dir, node, cpus, memory_mb, ports, accounting, first_job_id))
        key = workdir / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        m = workdir / "munge"
        munged = [_exe("munged"), "-F", f"--socket={munge_socket}", f"--key-file={key}", "--num-threads=4"]
        munged += [f"--pid-file={m / 'munged.pid'}", f"--seed-file={m / 'munged.seed'}"]
        daemons.start("munged", [*munged, f"--log-file={log_dir / 'munged.log'}"])
        daemons.wait_for(munge_socket.exists, timeout_s, "munged's socket")
        if accounting:
            # no mariadb-install-db (it needs mariadb-client): an empty datadir, no grant tables, no TCP
            db_socket = run_dir / "mysqld.sock"
            mariadbd = [_exe("mariadbd"), "--no-defaults", "--user=root", f"--datadir={workdir / 'db'}"]
            mariadbd += [f"--socket={db_socket}", f"--pid-file={workdir / 'db' / 'mariadbd.pid'}"]
            mariadbd += ["--skip-networking", "--skip-grant-tables", f"--log-error={log_dir / 'mariadbd.log'}"]
            mariadbd += ["--innodb-buffer-pool-size=64M", "--innodb-log-file-size=8M"]
            mariadbd += ["--innodb-lock-wait-timeout=900", "--innodb-flush-log-at-trx-commit=2"]
            daemons.start("mariadbd", mariadbd)
            daemons.wait_for(db_socket.exists, timeout_s, "MariaDB's socket")
            dbd_conf = workdir / "slurmdbd.conf"  # slurmdbd reads it next to $SLURM_CONF; must be 0600
            dbd_conf.write_text(_slurmdbd_conf(workdir, munge_socket, ports[2]))
            dbd_conf.chmod(0o600)
            daemons.start("slurmdbd", [_exe("slurmdbd"), "-D"], {"MYSQL_UNIX_PORT": str(db_socket)})
            daemons.wait_for(lambda: _port_open(ports[2]), timeout_s, f"slurmdbd on port {ports[2]}")
        daemons.start("slurmctld", [_exe("slurmctld"), "-D", "-f", str(conf)])
        daemons.wait_for(lambda: "is UP" in _output(cluster, "scontrol", "ping"), timeout_s, "slurmctld to answer")
        # slurmd.log (SlurmdLogFile) also gets slurmstepd's messages; slurmd.stderr repeats slurmd's own
        daemons.start("slurmd", [_exe("slurmd"), "-D", "-f", str(conf), "-N", node], log="slurmd.stderr")
        idle = lambda: _output(cluster, "sinfo", "-h", "-N", "-n", node, "-o", "%T").strip() == "idle"
        daemons.wait_for(idle, timeout_s, f"sinfo to report node {node} idle")
        os.environ["SLURM_CONF"] = str(conf)
        yield cluster
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        try:
            if daemons.running("slurmctld"):
                _cancel_all(cluster)
        finally:
            daemons.stop()
            _kill_marked(str(workdir))
            shutil.rmtree(run_dir, ignore_errors=True)


def _slurm_conf(
    workdir: Path,
    run_dir: Path,
    node: str,
    cpus: int,
    memory_mb: int,
    ports: tuple[int, ...],
    accounting: bool,
    first_job_id: int,
) -> str:
    ctld_port, slurmd_port, dbd_port = ports
    if accounting:
        acct = (
            "AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={dbd_port}\nAccountingStoragePass={run_dir / 'munge.socket'}"
        )
    else:
        acct = "AccountingStorageType=accounting_storage/none"
    return f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={run_dir / 'munge.socket'},cred_expire={CRED_EXPIRE_S}
StateSaveLocation={workdir / 'state'}
SlurmdSpoolDir={run_dir / 'spool'}
SlurmdLogFile={workdir / 'log' / 'slurmd.log'}
SlurmctldPidFile={workdir / 'state' / 'slurmctld.pid'}
SlurmdPidFile={workdir / 'state' / 'slurmd.pid'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
{acct}
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=30
MessageTimeout=5
KillWait=5
FirstJobId={first_job_id}
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _slurmdbd_conf(workdir: Path, munge_socket: Path, dbd_port: int) -> str:
    return f"""\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
PidFile={workdir / 'state' / 'slurmdbd.pid'}
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
"""


class _Daemons:
    """Daemons started in the foreground as children of this process, in their own sessions."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None, log: str = "") -> None:
        with open(self.log_dir / (log or f"{name}.log"), "ab") as out:  # slurmctld, slurmdbd: no LogFile, stderr
            self.procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **(extra_env or {})},
                start_new_session=True,  # a Ctrl-C of the test reaches the daemons only through our teardown
                preexec_fn=_die_with_parent,
            )

    def running(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def wait_for(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            dead = [f"{n} (exit {p.returncode})" for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"timed out after {timeout_s:g} s"
                raise RuntimeError(f"SLURM did not start: waiting for {what}, {why}\n{_logs_tail(self.log_dir)}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 20) -> None:
        """Stops the daemons in reverse start order: SIGTERM, then SIGKILL after `timeout_s`."""
        for _, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _die_with_parent() -> None:
    """In the daemon, before exec: SIGTERM when this process dies, even by SIGKILL (no orphaned cluster)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _cancel_all(cluster: SlurmCluster, timeout_s: float = 30) -> None:
    """Cancels every job of the cluster and waits for them to leave the queue (KillWait is 5 s)."""
    with suppress(RuntimeError, subprocess.TimeoutExpired):
        if not cluster.run("squeue", "-h", "-o", "%i").strip():
            return
        cluster.run("scancel", f"--partition={cluster.partition}")
        deadline = time.monotonic() + timeout_s
        while cluster.run("squeue", "-h", "-o", "%i").strip() and time.monotonic() < deadline:
            time.sleep(0.5)


def _kill_marked(token: str, timeout_s: float = 10) -> None:
    """SIGKILLs what the daemons left behind (slurmstepd and the job processes under it)."""
    pids = _all_pids()
    marked = {p for p in pids if _environ_has(p, f"{_MARKER}={token}".encode())}
    children: dict[int, list[int]] = {}
    for p in pids:
        if (ppid := _ppid(p)) is not None:
            children.setdefault(ppid, []).append(p)
    todo, doomed = list(marked), set()
    while todo:
        p = todo.pop()
        if p not in doomed and p != os.getpid():
            doomed.add(p)
            todo.extend(children.get(p, []))
    for p in doomed:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while any((stat := _stat(p)) and stat[1] != "Z" for p in doomed) and time.monotonic() < deadline:
        time.sleep(0.1)


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _stat(pid: int) -> list[str] | None:
    """[comm, state, ppid, ...] of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    close = raw.rfind(")")  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    return [raw[raw.find("(") + 1 : close], *raw[close + 2 :].split()]


def _ppid(pid: int) -> int | None:
    stat = _stat(pid)
    return int(stat[2]) if stat else None


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def running_slurmctld() -> list[int]:
    """The pids of the slurmctld processes running on this machine (zombies aside)."""
    return [p for p in _all_pids() if (stat := _stat(p)) and stat[0] == "slurmctld" and stat[1] != "Z"]


def _output(cluster: SlurmCluster, *args: str) -> str:
    """stdout of a SLURM command, "" if it fails or hangs (the daemons are still starting)."""
    try:
        return cluster.run(*args, check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return ""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_ports(n: int) -> tuple[int, ...]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def _total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _exe(name: str) -> str:
    found = _which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (see ensure_installed())")
    return found


def _logs_tail(log_dir: Path, lines: int = 20) -> str:
    parts = []
    for log in sorted(log_dir.glob("*")):
        with suppress(OSError):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)
