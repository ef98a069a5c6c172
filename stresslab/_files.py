"""Files that are whole or absent: atomic, durable writes, held-back signals, refusals of unsafe paths.

One home for what every writer of stresslab (results, reports, figures, checkpoints, books)
and every reader of a user's path needs, so that each guarantee of docs/reliability.md is
implemented once.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stresslab.errors import StresslabError

__all__ = [
    "signals_held",
    "write_failure_reason",
    "write_atomically",
    "write_durably",
    "fsync_directory",
    "remove_stale_temporaries",
    "refuse_special_file",
    "check_output_file",
]

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back during the block, then deliver them as they were.

    Yields
    ------
    list of int
        The signals received so far during the block (the block may look at it to skip
        work it would otherwise finish, e.g. the rename of a temporary file).

    Notes
    -----
    Numba's threads may receive a signal that is blocked in this one, so the handlers
    are swapped for recorders instead of masking the signals; a signal the process
    ignores stays ignored (a background job of a shell ignores SIGINT). On leaving the block the
    handlers are restored and the first signal received is sent again, so it acts with
    the handler the process had (KeyboardInterrupt for the CLI). Only in the main thread:
    elsewhere Python runs no signal handler anyway.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    held = [s for s in _HELD if signal.getsignal(s) is not signal.SIG_IGN]  # an ignored signal stays ignored
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            os.kill(os.getpid(), received[0])


def write_failure_reason(exc: BaseException, directory: Path, nbytes: int) -> str:
    """Why writing ``nbytes`` bytes into ``directory`` failed with ``exc``, for an error message.

    "permission denied (...)" or "no space left on device (...): free at least N MiB in
    DIR" when the errno says so; otherwise the exception's text, with a note when the
    directory's file system has fewer than ``nbytes`` bytes free (the likely cause).
    """
    code = getattr(exc, "errno", None)
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied ({exc})"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device ({exc}): free at least {_mib(nbytes)} MiB in {directory}"
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return str(exc) or type(exc).__name__
    if free < nbytes:
        return (f"{exc} (probably no space: {_mib(free)} MiB free, the data take {_mib(nbytes)} MiB): "
                f"free at least {_mib(nbytes - free)} MiB in {directory}")
    return str(exc) or type(exc).__name__


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Create or replace the file ``path`` so that readers see the old file or the new one, never a part.

    Parameters
    ----------
    path : pathlib.Path
        Target file; its directory must exist.
    write : callable
        ``write(tmp)`` writes the whole content to the file ``tmp``, a temporary file in
        the target's directory (``.<name>.<pid>.<random>.tmp``).

    Notes
    -----
    Temporary files of earlier writes of ``path`` whose process is gone (killed with
    SIGKILL mid-write) are removed first. SIGINT and SIGTERM are held back during the
    write (a handler raising inside a library that holds a lock, e.g. xarray's netCDF
    lock, can deadlock it); if one arrives, the temporary file is removed instead of
    renamed and the signal then acts (should its handler return, the file is written
    after all). Otherwise the file is flushed to disk
    (:func:`os.fsync`), moved onto ``path`` with :func:`os.replace` and the directory
    entry is flushed too. Whatever fails, the temporary file is removed and the
    exception propagates unchanged: the caller turns it into its message (with
    :func:`write_failure_reason`).
    """
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with signals_held() as received:
            write(tmp)
            if not received:
                _commit(tmp, path)
        if tmp.exists():  # a signal came during the write, but its handler did not stop the process
            _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, rename it onto ``path`` and flush the directory entry."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (the file, then its directory entry, on disk).

    The bytes go to a temporary file in the same directory, which is flushed with
    :func:`os.fsync`, renamed onto ``path`` and the directory is flushed: after a crash
    ``path`` holds the old content or all of ``data``. The caller holds signals back.
    """
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    tmp = Path(handle.name)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.<hex>.tmp`` files next to ``path`` whose writing process is gone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def refuse_special_file(path: Path, what: str, error: type[Exception] = StresslabError) -> None:
    """Refuse an input path that exists but is not a regular file, before anything opens it.

    A named pipe would block a reader forever; a device or a directory would fail deep
    inside it. A missing path passes: the caller says "no such file" in its own words.

    Raises
    ------
    StresslabError
        (or ``error``) naming the path, what it is and what is allowed.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, or a path the OS refuses (the caller's open says why)
        return
    if not stat.S_ISREG(mode):
        raise error(f"{path}: the {what} must be a regular file; this is {_kind(mode)}")


def check_output_file(path: Path, inputs: Iterable[Path] = (), option: str = "--out") -> None:
    """Refuse an output path before the work starts: an input of the run, not a regular file, or an unwritable folder.

    Parameters
    ----------
    path : pathlib.Path
        The file to be written (created or replaced).
    inputs : iterable of pathlib.Path
        Files the run reads (scenario, book, result being reported): never overwritten.
    option : str
        The option that named ``path``, for the message.

    Raises
    ------
    StresslabError
        Naming the path and why it cannot be written.
    """
    for source in inputs:
        if _same_file(path, source):
            raise StresslabError(f"{option} {path}: that is an input of this run ({source}); choose another file")
    if path.exists() and not path.is_file():
        kind = _kind(os.stat(path).st_mode)
        raise StresslabError(f"{option} {path}: only a regular file can be written or replaced; this is {kind}")
    folder = path.parent
    if not folder.is_dir():
        raise StresslabError(f"{option} {path}: the folder {folder} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise StresslabError(f"{option} {path}: cannot write in {folder}: {write_failure_reason(exc, folder, 0)}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    return True


def _mib(nbytes: float) -> str:
    return f"{max(nbytes, 0) / 2**20:,.1f}"
