"""Long runs survive interruption: checkpoints, resume, signals (a real `stresslab run` process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import stresslab

ROOT = Path(__file__).resolve().parents[1]
DOWNTURN = str(ROOT / "scenarios" / "services_downturn.toml")
RUN = ["run", DOWNTURN, "--synthetic", "3000", "--paths", "240", "--seed", "5", "--chunk-size", "4", "--quiet"]


def _default_sigint() -> None:
    # a child of a non-interactive shell (as in CI) inherits SIGINT ignored; a user's
    # terminal does not: restore the default so Ctrl-C is what the test sends
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "stresslab.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kw)


def _wait_for_chunks(directory: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(directory.glob("paths_*.npz"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before {n} chunks were saved: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint chunks appeared in time")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> xr.Dataset:
    out = tmp_path_factory.mktemp("ref") / "ref.nc"
    proc = _cli([*RUN, "--out", str(out)])
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return stresslab.load_results(out)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, reference, how):
    ckpt, out = tmp_path / "ckpt", tmp_path / "run.nc"
    proc = _cli([*RUN, "--checkpoint", str(ckpt), "--out", str(out)])
    _wait_for_chunks(ckpt, 5, proc)
    proc.send_signal(how)
    code = proc.wait(timeout=120)
    _, err = proc.communicate()
    assert code != 0
    assert not out.exists()  # nothing under the final name
    if how != signal.SIGKILL:  # a clean stop leaves no half-written chunk (a kill -9 may; resume removes it)
        assert not list(ckpt.glob("*.tmp"))
        assert code == 130 and "Traceback" not in err and "--resume" in err
    done = len(list(ckpt.glob("paths_*.npz")))
    assert 0 < done < 60
    resumed = _cli([*RUN, "--resume", str(ckpt), "--out", str(out)])
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert not list(ckpt.glob("*.tmp"))
    result = stresslab.load_results(out)
    for name in reference.data_vars:
        assert np.array_equal(result[name].values, reference[name].values), name


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    book = stresslab.synthetic_portfolio(50, seed=1)
    scen = stresslab.load_scenario(DOWNTURN)
    stresslab.simulate(book, scen, n_paths=8, seed=1, chunk_size=4, checkpoint=ckpt)
    for kwargs, what in (({"seed": 2}, "seed"), ({"n_paths": 12}, "n_paths")):
        with pytest.raises(stresslab.StresslabError, match=f"its {what} differs"):
            stresslab.simulate(book, scen, **{"n_paths": 8, "seed": 1, **kwargs}, checkpoint=ckpt, resume=True)
    with pytest.raises(stresslab.StresslabError, match="portfolio_digest differs"):
        stresslab.simulate(stresslab.synthetic_portfolio(50, seed=2), scen, n_paths=8, seed=1, checkpoint=ckpt, resume=True)
    other = stresslab.load_scenario(ROOT / "scenarios" / "baseline.toml")
    with pytest.raises(stresslab.StresslabError, match="its scenario differs"):
        stresslab.simulate(book, other, n_paths=8, seed=1, checkpoint=ckpt, resume=True)
    with pytest.raises(stresslab.StresslabError, match="not empty"):
        stresslab.simulate(book, scen, n_paths=8, seed=1, checkpoint=ckpt)
    with pytest.raises(stresslab.StresslabError, match="no checkpoint to resume"):
        stresslab.simulate(book, scen, n_paths=8, seed=1, checkpoint=tmp_path / "none", resume=True)
