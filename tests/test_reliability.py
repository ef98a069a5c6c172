"""No traceback for any input: each hostile case is exit 2 (bad input) or 1 (internal) with one line, inputs unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

import stresslab
from stresslab.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOWNTURN = str(ROOT / "scenarios" / "services_downturn.toml")
SMALL = ["--synthetic", "20", "--paths", "8", "--seed", "1", "--quiet"]


def _book_csv(path: Path, change=None) -> None:
    """A 5-loan book; ``change(lines)`` edits its CSV lines (header first)."""
    stresslab.synthetic_portfolio(5, seed=1).save(path)
    if change is not None:
        lines = path.read_text().splitlines()
        change(lines)
        path.write_text("\n".join(lines) + "\n")


def _set_cell(column: str, value: str):
    def change(lines: list[str]) -> None:
        header, row = lines[0].split(","), lines[2].split(",")
        row[header.index(column)] = value
        lines[2] = ",".join(row)

    return change


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every hostile input of the matrix, in one folder."""
    d = tmp_path_factory.mktemp("inputs")
    shutil.copy(DOWNTURN, d / "victim.toml")
    _book_csv(d / "book.csv")
    _book_csv(d / "short.csv", lambda lines: lines.__setitem__(2, ",".join(lines[2].split(",")[:12])))
    _book_csv(d / "longcell.csv", _set_cell("industry", "x" * 20_000))
    _book_csv(d / "bigbalance.csv", _set_cell("balance", "1e300"))
    ds = stresslab.simulate(stresslab.synthetic_portfolio(20, seed=0), stresslab.load_scenario(DOWNTURN), n_paths=8, seed=1)
    stresslab.save_results(ds, d / "good.nc")
    infinite = ds.copy(deep=True)
    infinite["weight"].values[3] = np.inf
    stresslab.save_results(infinite, d / "infw.nc")
    text = ds.copy()
    text["loss_gross"] = text["loss_gross"].astype(str)
    stresslab.save_results(text, d / "strloss.nc")
    for name in ("fifo.toml", "fifo.csv", "fifo.nc"):
        os.mkfifo(d / name)
    (d / "bom.toml").write_bytes(b"\xef\xbb\xbfhorizon_months = 12\n")
    (d / "escape.toml").write_text('name = "evil\\u001b[2Jred"\nhorizon_months = 12\n')
    (d / "rolls.toml").write_text("horizon_months = 12\n[delinquency]\nroll_rates = [" + ", ".join(["0.5"] * 100_000) + "]\n")
    (d / "names.toml").write_text("horizon_months = 12\n[shocks.industry]\n" + "".join(f"i{i} = 1\n" for i in range(10_001)))
    (d / "parent.toml").write_text("horizon_months = 3\n")
    (d / "child.toml").write_text('extends = "parent.toml"\n')
    (d / "out").mkdir()
    return d


# (argv with {d} for the folder of inputs, exit status, words of the one error line)
REFUSED = {
    "--out onto the scenario": (["run", "{d}/victim.toml", *SMALL, "--out", "{d}/victim.toml"], "input of this run"),
    "--out onto a parent scenario": (["run", "{d}/child.toml", *SMALL, "--out", "{d}/parent.toml"], "input of this run"),
    "--out onto the book": (["run", DOWNTURN, "--portfolio", "{d}/book.csv", "--paths", "8", "--seed", "1", "--quiet",
                             "--out", "{d}/book.csv"], "input of this run"),
    "report --out onto the result": (["report", "{d}/good.nc", "--out", "{d}/good.nc"], "input of this run"),
    "--out onto a device": (["run", DOWNTURN, *SMALL, "--out", "/dev/null"], "this is a character device"),
    "--out onto a folder": (["run", DOWNTURN, *SMALL, "--out", "{d}/out"], "this is a directory"),
    "--out into a missing folder": (["run", DOWNTURN, *SMALL, "--out", "{d}/nodir/r.nc"], "does not exist"),
    "synth into a missing folder": (["synth", "10", "--out", "{d}/nodir/s.csv"], "does not exist"),
    "synth of 1e11 loans": (["synth", "100000000000", "--out", "{d}/out/s.csv"], "GiB of memory"),
    "run --synthetic 1e12": (["run", DOWNTURN, "--synthetic", "1000000000000", "--paths", "8", "--seed", "1", "--quiet"], "GiB of memory"),
    "--scheduler without a port": (["run", DOWNTURN, *SMALL, "--scheduler", "/etc/passwd"], "tcp://host:port"),
    "--checkpoint on a file": (["run", DOWNTURN, *SMALL, "--checkpoint", "{d}/book.csv"], "must be a directory"),
    "show a string loss": (["show", "{d}/strloss.nc"], "must hold numbers"),
    "report a string loss": (["report", "{d}/strloss.nc", "--out", "{d}/out/r.html"], "must hold numbers"),
    "show an infinite weight": (["show", "{d}/infw.nc"], "weights must be finite"),
    "report an infinite weight": (["report", "{d}/infw.nc", "--out", "{d}/out/r.html"], "weights must be finite"),
    "validate a named pipe": (["validate", "{d}/fifo.toml"], "this is a named pipe"),
    "a named pipe as the book": (["run", DOWNTURN, "--portfolio", "{d}/fifo.csv", "--paths", "8", "--seed", "1", "--quiet"],
                                 "this is a named pipe"),
    "show a named pipe": (["show", "{d}/fifo.nc"], "this is a named pipe"),
    "a CSV row of 12 fields": (["run", DOWNTURN, "--portfolio", "{d}/short.csv", "--paths", "8", "--seed", "1", "--quiet"],
                               "row 2 has 12 fields"),
    "a 20,000-character cell": (["run", DOWNTURN, "--portfolio", "{d}/longcell.csv", "--paths", "8", "--seed", "1", "--quiet"],
                                "at most 256"),
    "a balance of 1e300": (["run", DOWNTURN, "--portfolio", "{d}/bigbalance.csv", "--paths", "8", "--seed", "1", "--quiet"],
                           "[0, 1e12] CNY"),
    "100,000 roll rates": (["validate", "{d}/rolls.toml"], "roll_rates"),
    "10,001 industries": (["validate", "{d}/names.toml"], "at most 10,000"),
}


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``folder`` (named pipes are not opened)."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if stat.S_ISREG(p.lstat().st_mode)
    }


def _run(files: Path, argv: list[str], capsys) -> tuple[int, str, list[str]]:
    before = _digests(files)
    status = main([a.replace("{d}", str(files)) for a in argv])
    out, err = capsys.readouterr()
    assert _digests(files) == before  # no input changed, nothing half-written left
    return status, out, err.splitlines()


def _one_error(lines: list[str]) -> str:
    """The error line, after checking stderr holds stresslab lines only (warnings may precede it)."""
    assert lines and all(line.startswith("stresslab: ") for line in lines), lines
    errors = [line for line in lines if " error: " in line or line.startswith("stresslab: error")]
    assert len(errors) == 1, lines
    return errors[0]


@pytest.mark.parametrize("case", REFUSED)
def test_hostile_input_is_one_line_exit_2(files, case, capsys):
    argv, words = REFUSED[case]
    status, _, lines = _run(files, argv, capsys)
    line = _one_error(lines)
    assert status == 2 and words in line, line
    assert len(line) <= 1100


def test_a_bom_in_a_scenario_is_accepted(files, capsys):
    status, out, _ = _run(files, ["validate", "{d}/bom.toml"], capsys)
    assert status == 0 and "ok (bom, 12 months)" in out


def test_terminal_escapes_in_names_are_shown_escaped(files, capsys):
    status, out, _ = _run(files, ["validate", "{d}/escape.toml"], capsys)
    assert status == 0 and "\x1b" not in out and "evil\\x1b[2Jred" in out


def test_duplicate_levels_are_merged(files, capsys):
    status, out, _ = _run(files, ["run", DOWNTURN, *SMALL, "--levels", "0.99,0.99"], capsys)
    assert status == 0 and out.count("VaR 99%") == 1


def test_an_internal_error_is_one_line_exit_1_with_the_trace_saved(files, capsys, monkeypatch):
    def broken(path):
        raise ZeroDivisionError("a defect")

    monkeypatch.setattr("stresslab.cli.load_scenario", broken)
    status, _, lines = _run(files, ["validate", DOWNTURN], capsys)
    assert status == 1 and len(lines) == 1
    assert lines[0].startswith("stresslab: internal error: ZeroDivisionError: a defect; please report it")
    trace = Path(lines[0].rsplit(" ", 1)[1])
    assert "Traceback" in trace.read_text() and "a defect" in trace.read_text()
    trace.unlink()
    assert main(["--traceback", "validate", DOWNTURN]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err.splitlines()[-1]
    Path(err.splitlines()[-1].rsplit(" ", 1)[1]).unlink()


@pytest.fixture(scope="module")
def readonly(tmp_path_factory):
    """A read-only folder that even root cannot write: a tmpfs mounted read-only (where mounting works)."""
    mount = tmp_path_factory.mktemp("readonly")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("argv, words", [
    (["synth", "10", "--out", "{ro}/s.csv"], "cannot write in"),
    (["run", DOWNTURN, *SMALL, "--out", "{ro}/r.nc"], "cannot write in"),
    (["run", DOWNTURN, *SMALL, "--checkpoint", "{ro}/ckpt"], "cannot create the checkpoint: permission denied"),
], ids=["synth", "run --out", "run --checkpoint"])
def test_a_read_only_folder_is_one_line_exit_2(readonly, argv, words, capsys):
    status = main([a.replace("{ro}", str(readonly)) for a in argv])
    line = _one_error(capsys.readouterr().err.splitlines())
    assert status == 2 and words in line and "permission denied" in line, line


def test_the_local_dashboard_listens_on_this_machine_only():
    pytest.importorskip("distributed")
    from stresslab.run.distributed import connect

    with connect(workers=1) as client:
        sockets = client.cluster.scheduler.http_server._sockets.values()  # tornado: the bound sockets (the link would say 127.0.0.1 even when bound to 0.0.0.0)
        hosts = {sock.getsockname()[0] for sock in sockets}
    assert hosts == {"127.0.0.1"}, hosts


def test_an_address_space_limit_counts_as_the_memory_available(monkeypatch):
    import stresslab._memory as memory

    limit = memory._virtual_size() + 2**30  # ulimit -v leaving 1 GiB
    monkeypatch.setattr(memory.resource, "getrlimit", lambda which: (int(limit), int(limit)))
    assert memory.available_memory() == pytest.approx(2**30, rel=0.05)
