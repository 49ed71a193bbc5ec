"""``--executor local``: N points at a time on this machine, each a child process
(``python -m autonba.sweep.point``) with the cores divided between them, its output in
``ROOT/.sweep/logs/NAME.log``. A child dies with the sweep (SIGKILL included); a point interrupted
so resumes from its checkpoints when the sweep runs again."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from autonba.io import read_json
from autonba.sweep.plan import STATE
from autonba.sweep.point import FAILED

LOGS = "logs"


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the sweep process dies, however it dies (Linux)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalExecutor:
    def __init__(self, root: Path, jobs: int):
        self.root, self.jobs = root, jobs
        self.threads = max(1, cores() // jobs)
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _run(self, name: str) -> str | None:
        """One point in a child process; None, or why it failed."""
        logs = self.root / STATE / LOGS
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        with open(logs / f"{name}.log", "a") as log:
            child = subprocess.Popen([sys.executable, "-m", "autonba.sweep.point", str(self.root), name,
                                      "--threads", str(self.threads)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
            with self._lock:
                self._children.add(child)
            rc = child.wait()
            with self._lock:
                self._children.discard(child)
        if rc == 0:
            return None
        failure = self.root / STATE / FAILED / f"{name}.json"
        if failure.is_file():
            return str(read_json(failure, "failure")["error"])
        how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        return f"{how}; see {logs / f'{name}.log'} (it resumes from its checkpoint when the sweep runs again)"

    def run(self, names: list[str], on_done) -> dict[str, str | None]:
        """Run the points, ``jobs`` at a time; ``on_done(name, error)`` as each ends."""
        out: dict[str, str | None] = {}
        pool = ThreadPoolExecutor(self.jobs)
        try:
            futures = {pool.submit(self._run, n): n for n in names}
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                on_done(futures[f], out[futures[f]])
        except BaseException:  # Ctrl-C / SIGTERM: stop the children (they keep their checkpoints)
            pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                for child in self._children:
                    child.terminate()
            raise
        pool.shutdown()
        return out
