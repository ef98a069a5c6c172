"""A damaged checkpoint never hands back a wrong result: it is healed bitwise or refused in one line."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import stresslab
from stresslab.run.checkpoint import Checkpoint

ROOT = Path(__file__).resolve().parents[1]
DOWNTURN = ROOT / "scenarios" / "services_downturn.toml"
RUN = {"n_paths": 16, "seed": 3, "chunk_size": 4, "progress": False}
CHUNK = "paths_000000000004.npz"  # the second of four chunks


@pytest.fixture(scope="module")
def inputs():
    return stresslab.synthetic_portfolio(40, seed=1), stresslab.load_scenario(DOWNTURN)


@pytest.fixture(scope="module")
def reference(inputs):
    return stresslab.simulate(*inputs, **RUN)


@pytest.fixture(scope="module")
def finished(inputs, tmp_path_factory) -> Path:
    """A checkpoint of the whole run (every chunk saved)."""
    ckpt = tmp_path_factory.mktemp("finished") / "ckpt"
    stresslab.simulate(*inputs, **RUN, checkpoint=ckpt)
    return ckpt


@pytest.fixture
def ckpt(finished, tmp_path) -> Path:
    copy = tmp_path / "ckpt"
    shutil.copytree(finished, copy)
    return copy


def _resume(inputs, ckpt):
    return stresslab.simulate(*inputs, **RUN, checkpoint=ckpt, resume=True)


def _assert_same(result, reference) -> None:
    for name in reference.data_vars:
        assert np.array_equal(result[name].values, reference[name].values), name


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def _rewrite(ckpt: Path, arrays: dict[str, np.ndarray], *, manifest_too: bool) -> None:
    """Replace the chunk's file by these arrays; with ``manifest_too`` also its SHA-256 and arrays in the manifest."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # object arrays are pickled
    (ckpt / CHUNK).write_bytes(buffer.getvalue())
    if manifest_too:
        manifest = json.loads((ckpt / "manifest.json").read_text())
        entry = manifest["chunks"][CHUNK]
        entry["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
        entry["arrays"] = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()}
        (ckpt / "manifest.json").write_text(json.dumps(manifest))


def _swap(ckpt: Path) -> list[str]:
    a, b = ckpt / "paths_000000000000.npz", ckpt / CHUNK
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    return ["paths_000000000000.npz", CHUNK]


def _bytes(change):
    def damage(ckpt: Path) -> list[str]:
        (ckpt / CHUNK).write_bytes(change((ckpt / CHUNK).read_bytes()))
        return [CHUNK]

    return damage


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :]


def _arrays_changed(change, *, manifest_too: bool):
    def damage(ckpt: Path) -> list[str]:
        arrays = _arrays(ckpt / CHUNK)
        change(arrays)
        _rewrite(ckpt, arrays, manifest_too=manifest_too)
        return [CHUNK]

    return damage


def _other_run(arrays):
    arrays["_run"] = np.array("0" * 64)


DAMAGE = {
    "swapped": _swap,
    "zeroed": _bytes(lambda d: bytes(len(d))),
    "truncated": _bytes(lambda d: d[: len(d) // 2]),
    "empty": _bytes(lambda d: b""),
    "bit-flipped": _bytes(_flip),
    "other dtype": _arrays_changed(lambda a: a.update(loss_gross=a["loss_gross"].astype(np.float32)), manifest_too=False),
    "other dtype, manifest rewritten": _arrays_changed(
        lambda a: a.update(loss_gross=a["loss_gross"].astype(np.float32)), manifest_too=True),
    "wrong shape, manifest rewritten": _arrays_changed(
        lambda a: a.update(loss_gross=a["loss_gross"][:2]), manifest_too=True),
    "missing array, manifest rewritten": _arrays_changed(lambda a: a.pop("weight"), manifest_too=True),
    "pickled array, manifest rewritten": _arrays_changed(
        lambda a: a.update(weight=np.array([object()] * 4)), manifest_too=True),
    "another run's chunk, manifest rewritten": _arrays_changed(_other_run, manifest_too=True),
    "deleted": lambda ckpt: [(ckpt / CHUNK).unlink(), CHUNK][1:],
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_chunk_is_recomputed_with_one_warning_each(inputs, reference, ckpt, case):
    damaged = DAMAGE[case](ckpt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _resume(inputs, ckpt)
    _assert_same(result, reference)
    messages = [str(w.message) for w in caught if issubclass(w.category, stresslab.StresslabWarning)]
    assert len(messages) == len(damaged)
    for name, message in zip(sorted(damaged), sorted(messages)):
        assert name in message and "damaged" in message and "recomputing" in message and "\n" not in message
    _assert_same(_resume(inputs, ckpt), reference)  # healed: the next resume loads every chunk quietly


def _manifest(change):
    def damage(ckpt: Path) -> None:
        path = ckpt / "manifest.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return damage


MANIFESTS = {
    "a list": (_manifest(lambda m: [m]), "JSON object"),
    "lacking chunk_size": (_manifest(lambda m: {k: v for k, v in m.items() if k != "chunk_size"}), "chunk_size"),
    "chunk_size a string": (_manifest(lambda m: {**m, "chunk_size": "4"}), "chunk_size"),
    "chunk_size zero": (_manifest(lambda m: {**m, "chunk_size": 0}), "chunk_size"),
    "chunk_size another value": (_manifest(lambda m: {**m, "chunk_size": 8}), "chunk_size 8"),
    "a chunk entry broken": (_manifest(lambda m: {**m, "chunks": {CHUNK: [1, 2]}}), "entry of chunk"),
    "not JSON": (lambda ckpt: (ckpt / "manifest.json").write_bytes(b"{\x00"), "unreadable"),
    "empty": (lambda ckpt: (ckpt / "manifest.json").write_bytes(b""), "unreadable"),
    "missing": (lambda ckpt: (ckpt / "manifest.json").unlink(), "no checkpoint to resume"),
}


@pytest.mark.parametrize("case", MANIFESTS)
def test_a_damaged_manifest_is_refused_in_one_line_with_the_fix(inputs, ckpt, case):
    damage, words = MANIFESTS[case]
    damage(ckpt)
    with pytest.raises(stresslab.StresslabError) as info:
        _resume(inputs, ckpt)
    message = str(info.value)
    assert words in message and "\n" not in message
    if case != "missing":
        assert "start again with --checkpoint" in message


def test_chunks_record_range_arrays_digest_and_run(finished):
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["chunk_size"] == 4 and sorted(manifest["chunks"]) == [f"paths_{s:012d}.npz" for s in (0, 4, 8, 12)]
    entry = manifest["chunks"][CHUNK]
    assert entry["paths"] == [4, 8]
    assert entry["sha256"] == hashlib.sha256((finished / CHUNK).read_bytes()).hexdigest()
    assert entry["arrays"]["loss_gross"]["dtype"] == "<f8" and entry["arrays"]["loss_gross"]["shape"][0] == 4
    saved = _arrays(finished / CHUNK)
    assert str(saved["_run"]) == manifest["run"] and saved["_paths"].tolist() == [4, 8]


def test_a_checkpoint_is_locked_by_its_run(ckpt):
    identity = json.loads((ckpt / "manifest.json").read_text())["identity"]
    with Checkpoint(ckpt, identity, resume=True):
        with pytest.raises(stresslab.StresslabError, match="in use by another run"):
            Checkpoint(ckpt, identity, resume=True)
    Checkpoint(ckpt, identity, resume=True).close()  # released when the first one closed


def test_a_checkpoint_path_that_is_a_file_or_unwritable_is_refused(inputs, tmp_path, monkeypatch):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(stresslab.StresslabError, match="must be a directory"):
        stresslab.simulate(*inputs, **RUN, checkpoint=afile)

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(stresslab.StresslabError, match="cannot create the checkpoint: permission denied"):
        stresslab.simulate(*inputs, **RUN, checkpoint=tmp_path / "ro" / "ckpt")
