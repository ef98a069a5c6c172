"""Faults under load, with real `stresslab` processes: kill -9 at random moments, signals in the final write, full disks."""

from __future__ import annotations

import errno
import gc
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import stresslab

ROOT = Path(__file__).resolve().parents[1]
DOWNTURN = str(ROOT / "scenarios" / "services_downturn.toml")
ARGS = {"n_paths": 64, "seed": 5, "chunk_size": 4}
RUN = ["run", DOWNTURN, "--synthetic", "200", "--paths", "64", "--seed", "5", "--chunk-size", "4", "--quiet"]

# The child is the CLI, optionally slowed down where a fault must land: "fsync" makes every
# fsync (chunk, manifest, result) take 0.1 s, "write" makes the final netCDF write take 2 s
# more after the data are in the temporary file.
CHILD = """
import os, sys, time
slow = os.environ.get("STRESSLAB_TEST_SLOW")
if slow == "fsync":
    real_fsync = os.fsync
    os.fsync = lambda fd: (time.sleep(0.1), real_fsync(fd))[1]
if slow == "write":
    import xarray as xr
    real_write = xr.Dataset.to_netcdf
    def to_netcdf(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        time.sleep(2.0)
    xr.Dataset.to_netcdf = to_netcdf
from stresslab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a child of a non-interactive shell inherits it ignored


def _cli(args: list[str], slow: str = "") -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "STRESSLAB_TEST_SLOW": slow}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _wait_until(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the moment of the fault: {proc.communicate()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the moment of the fault never came")


def _finish(proc: subprocess.Popen, timeout: float = 300.0) -> tuple[int, str, str]:
    code = proc.wait(timeout=timeout)
    out, err = proc.communicate()
    return code, out, err


@pytest.fixture(scope="module")
def reference():
    return stresslab.simulate(stresslab.synthetic_portfolio(200, seed=0), stresslab.load_scenario(DOWNTURN), **ARGS)


def _assert_same(path: Path, reference) -> None:
    result = stresslab.load_results(path)
    for name in reference.data_vars:
        assert np.array_equal(result[name].values, reference[name].values), name


def _temporaries(folder: Path) -> list[Path]:
    return list(folder.glob("*.tmp")) + list(folder.glob(".*.tmp"))


def _chunks(ckpt: Path) -> int:
    return len(list(ckpt.glob("paths_*.npz")))


MOMENTS = {
    "after a random chunk (seed 1)": 1,
    "after a random chunk (seed 2)": 2,
    "during a chunk write": "chunk",
    "during the final write": "final",
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_9_at_any_moment_then_resume_is_bitwise_the_uninterrupted_run(tmp_path, reference, moment):
    ckpt, out = tmp_path / "ckpt", tmp_path / "r.nc"
    when = MOMENTS[moment]
    proc = _cli([*RUN, "--checkpoint", str(ckpt), "--out", str(out)], slow="write" if when == "final" else "fsync")
    if when == "chunk":
        _wait_until(lambda: _chunks(ckpt) >= 3 and any(p.name.startswith(".paths_") for p in _temporaries(ckpt)), proc)
    elif when == "final":
        _wait_until(lambda: bool(_temporaries(tmp_path)), proc)
    else:
        rng = random.Random(when)
        target = rng.randrange(1, 15)
        _wait_until(lambda: _chunks(ckpt) >= target, proc)
        time.sleep(rng.uniform(0.0, 0.3))
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists()
    left = _temporaries(tmp_path)
    code, _, err = _finish(_cli([*RUN, "--resume", str(ckpt), "--out", str(out)]))
    assert code == 0, err
    assert "Traceback" not in err and not _temporaries(ckpt) and not _temporaries(tmp_path)
    if when == "final":
        assert left  # the killed write left its temporary file; the next write removed it
    _assert_same(out, reference)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_final_write_exits_cleanly_and_removes_the_temporary_file(tmp_path, how):
    out = tmp_path / "r.nc"
    proc = _cli([*RUN, "--out", str(out)], slow="write")
    _wait_until(lambda: bool(_temporaries(tmp_path)), proc)
    proc.send_signal(how)
    code, _, err = _finish(proc, timeout=60)  # a deadlock would time out here
    assert code == 130 and "interrupted, no result written" in err and "Traceback" not in err
    assert not out.exists() and not _temporaries(tmp_path)


def test_a_second_run_on_a_checkpoint_in_use_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _cli([*RUN, "--chunk-size", "2", "--checkpoint", str(ckpt)], slow="fsync")  # 32 slow chunks: ~13 s
    _wait_until(lambda: (ckpt / "manifest.json").exists(), first)
    code, _, err = _finish(_cli([*RUN, "--resume", str(ckpt)]))
    assert first.poll() is None, "the first run ended before the second was refused: slow it down"
    assert code == 2 and "in use by another run" in err and err.count("\n") == 1
    first.kill()
    first.wait(timeout=60)
    first.communicate()


def test_a_closed_pipe_ends_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "stresslab.cli", "validate", DOWNTURN], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 141 and err == "", err


# ------------------------------------------------------------------------------ full disks
def _inputs():
    return stresslab.synthetic_portfolio(200, seed=0), stresslab.load_scenario(DOWNTURN)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_no_space_for_a_chunk_keeps_the_finished_ones_and_says_what_to_free(tmp_path, reference, monkeypatch):
    import stresslab.run.checkpoint as checkpoint

    ckpt = tmp_path / "ckpt"
    real, calls = checkpoint.write_durably, []

    def filling(path, data):
        calls.append(path)
        if len(calls) > 5:  # the manifest, then two chunks with their manifests
            _enospc()
        real(path, data)

    monkeypatch.setattr(checkpoint, "write_durably", filling)
    with pytest.raises(stresslab.StresslabError) as info:
        stresslab.simulate(*_inputs(), **ARGS, checkpoint=ckpt)
    message = str(info.value)
    assert "no space left on device" in message and "free at least" in message and f"--resume {ckpt}" in message
    assert _chunks(ckpt) == 2 and not _temporaries(ckpt)
    monkeypatch.undo()
    result = stresslab.simulate(*_inputs(), **ARGS, checkpoint=ckpt, resume=True)
    for name in reference.data_vars:
        assert np.array_equal(result[name].values, reference[name].values), name


def test_no_space_for_the_result_leaves_the_earlier_file_and_no_part(tmp_path, reference, monkeypatch):
    out = tmp_path / "r.nc"
    out.write_bytes(b"earlier")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(stresslab.StresslabError, match="no space left on device.*free at least"):
        stresslab.save_results(reference, out)
    assert out.read_bytes() == b"earlier" and not _temporaries(tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs (root only, where mounting works)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the simulated ENOSPC tests cover the same paths)")
    yield mount
    gc.collect()  # a traceback held by the test may still hold a file of the disk open
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], check=True)  # still busy: detach now, freed when closed


def test_a_really_full_disk(small_disk, reference, capsys):
    ckpt, out = small_disk / "ckpt", small_disk / "r.nc"
    with pytest.raises(stresslab.StresslabError, match="free at least") as info:
        stresslab.simulate(*_inputs(), **ARGS, checkpoint=ckpt)
    assert "--resume" in str(info.value) and not _temporaries(ckpt)
    saved = _chunks(ckpt)
    assert 0 < saved < 16
    with pytest.raises(stresslab.StresslabError, match="could not save results"):
        stresslab.save_results(reference, out)
    assert not out.exists() and not _temporaries(small_disk)


@pytest.mark.parametrize("handler", [signal.SIG_IGN, lambda signum, frame: None], ids=["ignored", "returning handler"])
def test_a_signal_that_does_not_stop_the_process_does_not_lose_the_write(tmp_path, handler):
    from stresslab._files import write_atomically

    target = tmp_path / "f"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"data")
        os.kill(os.getpid(), signal.SIGINT)  # arrives mid-write

    previous = signal.signal(signal.SIGINT, handler)
    try:
        write_atomically(target, write)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert target.read_bytes() == b"data" and not _temporaries(tmp_path)
