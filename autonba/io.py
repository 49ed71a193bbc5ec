"""File helpers: JSON read with clear errors, strict JSON, atomic writes (temp file, then rename) with
the umask's permissions, checks of an output location before any work, and the lock that gives a run
directory to one process at a time."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from autonba.config import non_finite
from autonba.errors import AutonbaError


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _os_error(e: OSError, path: Path, action: str) -> AutonbaError:
    return AutonbaError(f"cannot {action} {path}: {e.strerror or e}")


def _write_via_temp(path: Path, mode: str, write: Callable[[IO], object], what: str) -> None:
    """Write through a temp file in the same folder, then rename it over ``path`` (readable as the
    umask allows, like any other file); on any failure ``path`` is untouched and the temp file gone."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autonba-", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise _os_error(e, path, f"write {what}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file, turning a missing file or bad JSON into one clear error."""
    p = Path(path)
    if not p.is_file():
        raise AutonbaError(f"{what} file not found: {p}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AutonbaError(f"{what} file {p} is not valid JSON: {e}") from None
    except RecursionError:
        raise AutonbaError(f"{what} file {p} nests lists or objects too deeply to read") from None


def write_atomic(path: str | Path, text: str, what: str = "file") -> None:
    _write_via_temp(Path(path), "w", lambda f: f.write(text), what)


def write_atomic_bytes(path: str | Path, data: bytes, what: str = "file") -> None:
    _write_via_temp(Path(path), "wb", lambda f: f.write(data), what)


def finite_or_null(x: Any) -> Any:
    """``x`` with every non-finite float (nested in dicts, lists and tuples) replaced by None: a figure
    that is undefined (the EDP of a network no design fits) or overflows is null in JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_or_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_null(v) for v in x]
    return x


def dumps(data: Any, indent: int | None = 2) -> str:
    """Strict JSON (no NaN or Infinity token): a non-finite number is a bug, reported with its field."""
    bad = non_finite(data)
    if bad:
        raise ValueError(f"refusing to write a non-finite number as JSON (field '{bad}')")
    return json.dumps(data, indent=indent, allow_nan=False)


def write_json(path: str | Path, data: Any) -> None:
    write_atomic(path, dumps(data) + "\n", "JSON")


def write_config(path: str | Path, model: Any) -> None:
    """A resolved config (a pydantic model) as YAML."""
    import yaml
    write_atomic(path, yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False), "config")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file in the same folder, then an atomic rename: a failed write (full
    disk, permissions) is one clear error and leaves the previous checkpoint intact."""
    import io

    import torch
    buf = io.BytesIO()  # serialised first, so that the file system's own error (e.g. ENOSPC) reaches the user
    torch.save(state, buf)
    _write_via_temp(Path(path), "wb", lambda f: f.write(buf.getbuffer()), "checkpoint")


def load_checkpoint(path: str | Path) -> Any:
    """A checkpoint written by ``save_checkpoint`` (tensors and plain data only); clear error if corrupt."""
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AutonbaError(f"checkpoint not found: {path}") from None
    except Exception as e:  # torch raises many kinds for a truncated or foreign file
        raise AutonbaError(f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


# ---- output locations ------------------------------------------------------------------------------
def _name_fits(path: Path) -> bool:
    """Whether the last component of ``path`` is within its file system's name length."""
    folder = path.parent if path.parent.exists() else Path(".")
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    return len(os.fsencode(path.name)) <= limit


def _writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove a file can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise AutonbaError(f"{what}: {folder} exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".autonba-", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise AutonbaError(f"{what}: cannot write in {folder}: {e.strerror or e}") from None


def check_output_file(path: str | Path, what: str, inputs: Sequence[str | Path | None] = (),
                      force: bool = False) -> None:
    """Before any work: ``path`` can be written, is not a directory nor one of ``inputs``, and holds no
    earlier result unless ``force``."""
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise AutonbaError(f"{what}: '{path}' is not a file name")
    if path.is_dir():
        raise AutonbaError(f"{what}: {path} is a directory; give a file name")
    for src in inputs:
        if src and path.exists() and Path(src).exists() and path.samefile(src):
            raise AutonbaError(f"{what}: {path} is one of this command's inputs; it is never overwritten")
    if path.exists() and not force:
        raise AutonbaError(f"{what}: {path} already exists; choose another name or pass --force to replace it")
    if not _name_fits(path):
        raise AutonbaError(f"{what}: the file name {path.name[:40]}... is too long for the file system")
    _writable_folder(path.parent, what)


def check_output_dir(path: str | Path, what: str) -> None:
    """Before any work: ``path`` is (or can be made) a directory we can write in."""
    path = Path(path)
    if not path.exists() and not _name_fits(path):
        raise AutonbaError(f"{what}: the directory name {path.name[:40]}... is too long for the file system")
    _writable_folder(path, what)


# ---- one process per run directory -------------------------------------------------------------------
LOCK = ".autonba.lock"


class RunLock:
    """An exclusive ``flock`` on ``RUN/.autonba.lock`` for a command's life (released by the kernel on any
    exit, even SIGKILL); the file names its holder, so a second process is told who runs there."""

    def __init__(self, run_dir: str | Path, command: str):
        self.path = Path(run_dir) / LOCK
        self.command = command
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> RunLock:
        self._created = not self.path.parent.exists()
        check_output_dir(self.path.parent, "run directory")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise _os_error(e, self.path, "lock") from None
                raise AutonbaError(f"run directory {self.path.parent} is in use by another process "
                                   f"({self.holder()}); wait for it to end or choose another directory") from None
            try:  # the holder may have removed the file between our open and our lock: lock the current one
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()} on {socket.gethostname()}, 'autonba {self.command}' since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n").encode())
        self._fd = fd
        return self

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "holder unknown"
        except OSError:
            return "holder unknown"

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing releases the lock
            self._fd = None
            if self._created:  # a run that failed before writing anything leaves no directory behind
                with contextlib.suppress(OSError):
                    self.path.parent.rmdir()

