"""Checkpoints of a run: finished chunks of paths on disk, verified before they are used again.

A checkpoint directory holds ``manifest.json``, one ``paths_<start>.npz`` file per
finished chunk and a ``.lock`` file. The manifest records what the run is (its identity:
scenario, book digest, seed, path count, sampling, version), its chunk size and, for every
finished chunk, its path range, its arrays (names, shapes, dtypes) and the SHA-256 of its
bytes. Each chunk also holds the digest of the run's identity and its path range, so a
chunk of another run or another range is recognised even if the manifest was rewritten.
See docs/reliability.md for the guarantees and how they are tested.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from stresslab._files import signals_held, write_durably, write_failure_reason
from stresslab._kernels.arrays import Outputs
from stresslab.errors import StresslabError, StresslabWarning

__all__ = ["Checkpoint"]

_FORMAT = 2
_MANIFEST = "manifest.json"
_LOCK = ".lock"
_RUN, _PATHS = "_run", "_paths"  # the arrays of a chunk that say whose and which paths it is


class Checkpoint:
    """A directory of finished chunks of a run, written as they complete, locked by its run.

    Parameters
    ----------
    directory : path
    identity : mapping of str to JSON-able values
        What must match for a resume (e.g. scenario JSON, digest, seed, n_paths, version).
    resume : bool
        False: start a checkpoint (the directory must be absent or empty). True: continue
        one (the directory must hold a manifest with the same identity).

    Raises
    ------
    StresslabError
        If the directory is another run's, in use by a running process, not a directory,
        cannot be created, or its manifest cannot be read or does not match; the message
        says what to do.

    Notes
    -----
    The directory is locked (``flock`` on ``.lock``) from construction until
    :meth:`close`, so a second run on it is refused while the first runs. On resume each
    chunk is verified before it is used (:meth:`load`); a damaged chunk is recomputed
    with one warning saying which and why (results are deterministic, so the healed run is
    bitwise the uninterrupted one).
    """

    def __init__(self, directory: str | os.PathLike[str], identity: Mapping[str, object], *, resume: bool) -> None:
        self.directory = Path(directory)
        self.identity = dict(identity)
        self.run_digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        self.chunk_size: int | None = None
        self.chunks: dict[str, dict[str, object]] = {}
        self._lock = _lock(self.directory, create=not resume)
        try:
            if resume:
                self._read_manifest()
                for stale in self.directory.glob("*.tmp"):  # left by a process killed mid-save
                    stale.unlink(missing_ok=True)
            elif any(p.name != _LOCK for p in self.directory.iterdir()):
                raise StresslabError(
                    f"{self.directory}: checkpoint directory is not empty; resume it with --resume or choose another"
                )
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the directory's lock (the run is over); idempotent."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def start(self, chunk_size: int) -> None:
        """Write the manifest of a new checkpoint (no chunks yet)."""
        self.chunk_size = chunk_size
        with signals_held():
            self._write(self.directory / _MANIFEST, self._manifest_bytes(), "the checkpoint manifest")

    def load(self, start: int, out: Outputs) -> bool:
        """Fill ``out`` from the chunk starting at ``start`` if it was saved and is sound; True if it was.

        A chunk the manifest names but which fails verification (SHA-256, arrays, shapes,
        dtypes, run identity, path range) is dropped from the manifest with a
        :class:`StresslabWarning` naming it and the reason, and False is returned: the
        caller recomputes it.
        """
        name = _chunk_name(start)
        entry = self.chunks.get(name)
        if entry is None:
            return False
        stop = start + len(out.weight)
        problem = self._verify(name, start, stop, out)
        if problem is None:
            return True
        warnings.warn(
            f"checkpoint {self.directory}: chunk {name} (paths {start}..{stop - 1}) is damaged ({problem}); recomputing it",
            StresslabWarning,
            stacklevel=2,
        )
        del self.chunks[name]
        return False

    def save(self, start: int, out: Outputs) -> None:
        """Save a finished chunk durably, then name it in the manifest.

        The chunk is written to a temporary file, flushed to disk, renamed and its
        directory flushed before the manifest (written the same way) names it, so a chunk
        in the manifest is a chunk complete on disk. SIGINT and SIGTERM are held back
        meanwhile, so an interruption lands between chunks.

        Raises
        ------
        StresslabError
            If the disk is full or not writable: what to free, and that the finished
            chunks are kept for ``--resume``.
        """
        name = _chunk_name(start)
        arrays = {
            **out._asdict(),
            _RUN: np.array(self.run_digest),
            _PATHS: np.array([start, start + len(out.weight)], dtype=np.int64),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        entry = {
            "paths": [start, start + len(out.weight)],
            "sha256": hashlib.sha256(data).hexdigest(),
            "arrays": {key: _describe(value) for key, value in arrays.items()},
        }
        with signals_held():
            self._write(self.directory / name, data, f"checkpoint chunk {name}")
            self.chunks[name] = entry
            self._write(self.directory / _MANIFEST, self._manifest_bytes(), "the checkpoint manifest")

    def _write(self, path: Path, data: bytes, what: str) -> None:
        try:
            write_durably(path, data)
        except OSError as exc:
            raise StresslabError(
                f"could not save {what} in {self.directory}: {write_failure_reason(exc, self.directory, len(data))}; "
                f"the finished chunks are kept: continue with --resume {self.directory}"
            ) from None

    def _manifest_bytes(self) -> bytes:
        manifest = {
            "format": _FORMAT,
            "identity": self.identity,
            "run": self.run_digest,
            "chunk_size": self.chunk_size,
            "chunks": self.chunks,
        }
        return json.dumps(manifest, indent=1).encode()

    def _read_manifest(self) -> None:
        path = self.directory / _MANIFEST
        fix = f"delete {self.directory} and start again with --checkpoint"
        try:
            recorded = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StresslabError(f"{path}: unreadable checkpoint manifest ({_short(str(exc))}); {fix}") from None
        problem = _manifest_problem(recorded)
        if problem:
            raise StresslabError(f"{path}: damaged checkpoint manifest ({problem}); {fix}")
        for key, value in self.identity.items():
            if recorded["identity"].get(key) != value:
                raise StresslabError(
                    f"{self.directory}: the checkpoint belongs to another run: its {key} differs "
                    f"(checkpoint {_short(recorded['identity'].get(key))}, this run {_short(value)})"
                )
        chunk_size, n_paths = recorded["chunk_size"], self.identity.get("n_paths")
        for name, entry in recorded["chunks"].items():
            start = entry["paths"][0]
            want = [start, start + chunk_size if n_paths is None else min(start + chunk_size, n_paths)]
            if start % chunk_size or entry["paths"] != want or name != _chunk_name(start):
                raise StresslabError(
                    f"{path}: damaged checkpoint manifest (chunk {_short(name)} holds paths {entry['paths']}, "
                    f"which does not fit chunk_size {chunk_size}); {fix}"
                )
        self.chunk_size = chunk_size
        self.chunks = recorded["chunks"]

    def _verify(self, name: str, start: int, stop: int, out: Outputs) -> str | None:
        """None if the chunk file is sound (and copied into ``out``), else what is wrong with it."""
        try:
            data = (self.directory / name).read_bytes()
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        if hashlib.sha256(data).hexdigest() != self.chunks[name]["sha256"]:
            return "its SHA-256 differs from the manifest's: the file was changed or replaced"
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files}
        except Exception as exc:  # untrusted bytes: any failure to parse means a damaged file
            return f"not a readable array file: {type(exc).__name__}"
        targets = out._asdict()
        if set(arrays) != {*targets, _RUN, _PATHS}:
            return f"its arrays are {sorted(arrays)}, expected {sorted({*targets, _RUN, _PATHS})}"
        if str(arrays[_RUN]) != self.run_digest:
            return "it belongs to another run"
        if arrays[_PATHS].tolist() != [start, stop]:
            return f"it holds paths {arrays[_PATHS].tolist()}, not [{start}, {stop}]"
        if {key: _describe(value) for key, value in arrays.items()} != self.chunks[name]["arrays"]:
            return "its arrays differ from those the manifest records"
        for key, target in targets.items():
            if arrays[key].shape != target.shape or arrays[key].dtype != target.dtype:
                return f"array {key} is {arrays[key].dtype}{list(arrays[key].shape)}, expected {target.dtype}{list(target.shape)}"
        for key, target in targets.items():
            target[...] = arrays[key]
        return None


def _lock(directory: Path, *, create: bool) -> IO[str]:
    """Open and lock ``directory/.lock`` (creating the directory for a new checkpoint)."""
    if directory.exists() and not directory.is_dir():
        raise StresslabError(f"{directory}: a checkpoint must be a directory; this is a file: choose another path")
    if not create and not (directory / _MANIFEST).is_file():
        raise StresslabError(f"{directory}: no checkpoint to resume (manifest.json missing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / _LOCK, "a+")
    except OSError as exc:
        raise StresslabError(f"{directory}: cannot create the checkpoint: {write_failure_reason(exc, directory.parent, 0)}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise StresslabError(
            f"{directory}: the checkpoint is in use by another run (process {owner}); wait for it to end or choose another directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _manifest_problem(recorded: object) -> str | None:
    """What is wrong with the structure of a parsed manifest, or None."""
    if not isinstance(recorded, dict):
        return f"a JSON object is expected, got {type(recorded).__name__}"
    if recorded.get("format") != _FORMAT:
        return f"format {_short(recorded.get('format'))}, this version reads format {_FORMAT}"
    if not isinstance(recorded.get("identity"), dict):
        return "no identity object"
    size = recorded.get("chunk_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return f"chunk_size must be an integer >= 1; got {_short(size)}"
    chunks = recorded.get("chunks")
    if not isinstance(chunks, dict):
        return "no chunks object"
    for name, entry in chunks.items():
        if not _entry_ok(entry):
            return f"the entry of chunk {_short(name)} is not {{paths: [start, stop], sha256, arrays}}"
    return None


def _entry_ok(entry: object) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("arrays"), dict):
        return False
    paths = entry.get("paths")
    return (
        isinstance(paths, list)
        and len(paths) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in paths)
        and paths[0] < paths[1]
    )


def _describe(array: np.ndarray) -> dict[str, object]:
    return {"shape": list(array.shape), "dtype": array.dtype.str}


def _chunk_name(start: int) -> str:
    return f"paths_{start:012d}.npz"


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
