"""The command line, through main([...]) as a user would type it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import stresslab
from stresslab.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOWNTURN = str(ROOT / "scenarios" / "services_downturn.toml")


def test_run_on_synthetic_book_writes_result_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "run.nc"
    args = ["run", DOWNTURN, "--synthetic", "300", "--paths", "40", "--seed", "3", "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "services_downturn" in text and "EL" in text and "VaR 99%" in text and "DPD30+" in text
    ds = stresslab.load_results(out)
    direct = stresslab.simulate(stresslab.synthetic_portfolio(300, seed=0), stresslab.load_scenario(DOWNTURN), n_paths=40, seed=3)
    xr.testing.assert_identical(ds, direct)  # lossless netCDF round trip of a real run
    for name in direct.data_vars:
        assert ds[name].dtype == direct[name].dtype


def test_run_on_a_book_file(tmp_path, capsys):
    book = tmp_path / "book.parquet"
    assert main(["synth", "120", "--out", str(book), "--seed", "4"]) == 0
    assert "wrote 120 loans" in capsys.readouterr().out
    assert main(["run", DOWNTURN, "--portfolio", str(book), "--paths", "10", "--seed", "1", "--quiet"]) == 0
    assert "EL" in capsys.readouterr().out


def test_validate_good_and_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('horizon_months = 12\n[delinquency]\ndefault_afterr = 2\n')
    assert main(["validate", DOWNTURN, str(ROOT / "scenarios" / "baseline.toml")]) == 0
    assert main(["validate", DOWNTURN, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "default_afterr" in err and "did you mean 'default_after'" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_bad_book_is_one_line_error(tmp_path, capsys):
    book = tmp_path / "book.csv"
    stresslab.synthetic_portfolio(5, seed=1).save(book)
    lines = book.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")
    row[header.index("pd")] = "1.5"
    lines[2] = ",".join(row)
    book.write_text("\n".join(lines) + "\n")
    assert main(["run", DOWNTURN, "--portfolio", str(book), "--paths", "5", "--seed", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "book.csv" in err and "row 2" in err and "'pd'" in err and "1.5" in err


def test_traceback_flag_shows_the_trace(tmp_path, capsys):
    assert main(["--traceback", "validate", str(tmp_path / "missing.toml")]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", DOWNTURN, "--synthetic", "0", "--paths", "5", "--seed", "1"],
                                  ["run", DOWNTURN, "--synthetic", "10", "--paths", "5", "--seed", "-2"],
                                  ["run", DOWNTURN, "--paths", "5", "--seed", "1"],
                                  ["run", DOWNTURN, "--synthetic", "10", "--paths", "5", "--seed", "1", "--levels", "0.9,1.2"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_results_do_not_depend_on_threads_from_cli(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    base = ["run", DOWNTURN, "--synthetic", "150", "--paths", "12", "--seed", "8", "--quiet"]
    assert main([*base, "--out", str(a), "--threads", "1", "--chunk-size", "5"]) == 0
    assert main([*base, "--out", str(b), "--threads", "2"]) == 0
    ra, rb = stresslab.load_results(a), stresslab.load_results(b)
    assert all(np.array_equal(ra[v].values, rb[v].values) for v in ra.data_vars)


def test_compare_prints_paired_differences(tmp_path, capsys):
    subsidy = str(ROOT / "scenarios" / "interest_subsidy.toml")
    out = tmp_path / "cmp.nc"
    assert main(["compare", DOWNTURN, subsidy, "--synthetic", "200", "--paths", "40", "--seed", "2", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "services_downturn" in text and "interest_subsidy" in text and "expected_subsidy_cost" in text
    ds = stresslab.load_results(out)
    assert list(ds.scenario.values) == ["services_downturn", "interest_subsidy"]


def test_sweep_prints_the_response_and_saves_the_curve(tmp_path, capsys):
    fund = str(ROOT / "scenarios" / "compensation_fund.toml")
    png = tmp_path / "curve.png"
    args = ["sweep", fund, "--set", "layers.0.capacity=0,1e6,1e7", "--synthetic", "200", "--paths", "30",
            "--seed", "2", "--quiet", "--plot", str(png)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "layers.0.capacity" in text and "1,000,000" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_bad_key_is_one_line_error(capsys):
    args = ["sweep", DOWNTURN, "--set", "factors.ar2=0.1,0.2", "--synthetic", "50", "--paths", "5", "--seed", "1", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ar2" in err and err.count("\n") == 1


def test_run_with_tail_importance_sampling(capsys):
    args = ["run", DOWNTURN, "--synthetic", "200", "--paths", "60", "--seed", "2", "--quiet", "--tail", "is"]
    assert main(args) == 0
    assert "effective sample size" in capsys.readouterr().out


def test_run_with_tail_aimed_at_a_loss_level(capsys):
    args = ["run", DOWNTURN, "--synthetic", "200", "--paths", "60", "--seed", "2", "--quiet", "--target-loss", "5e6"]
    assert main([*args, "--tail", "is"]) == 0
    assert "effective sample size" in capsys.readouterr().out
    assert main(args) == 2  # a loss level without importance sampling
    err = capsys.readouterr().err
    assert "target_loss" in err and err.count("\n") == 1


def test_show_prints_a_saved_result(tmp_path, capsys):
    out = tmp_path / "run.nc"
    assert main(["run", DOWNTURN, "--synthetic", "100", "--paths", "20", "--seed", "3", "--quiet", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    assert capsys.readouterr().out.strip() in first
    assert main(["show", str(tmp_path / "missing.nc")]) == 2
    assert "missing.nc" in capsys.readouterr().err


def test_report_command_writes_html(tmp_path, capsys):
    out, html = tmp_path / "run.nc", tmp_path / "report.html"
    book = tmp_path / "book.parquet"
    assert main(["synth", "150", "--out", str(book)]) == 0
    assert main(["run", DOWNTURN, "--portfolio", str(book), "--paths", "30", "--seed", "3", "--quiet", "--out", str(out)]) == 0
    assert main(["report", str(out), "--out", str(html), "--portfolio", str(book)]) == 0
    text = html.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in text


def test_run_on_a_local_dask_cluster_is_bitwise_the_local_run(tmp_path):
    pytest.importorskip("distributed")
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    base = ["run", DOWNTURN, "--synthetic", "150", "--paths", "16", "--seed", "4", "--quiet", "--chunk-size", "5"]
    assert main([*base, "--out", str(a)]) == 0
    assert main([*base, "--out", str(b), "--workers", "2"]) == 0
    ra, rb = stresslab.load_results(a), stresslab.load_results(b)
    assert all(np.array_equal(ra[v].values, rb[v].values) for v in ra.data_vars)


def test_warmup_runs_every_kind_of_run(capsys):
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert "kernels ready in" in out


def test_first_run_says_it_compiles(monkeypatch, capsys):
    import stresslab.run.runner as runner

    book = stresslab.synthetic_portfolio(50, seed=0)
    scenario = stresslab.load_scenario(DOWNTURN)
    monkeypatch.setattr(runner, "needs_compiling", lambda *kernels: True)
    stresslab.simulate(book, scenario, 4, seed=1)
    assert "compiling kernels (first run only" in capsys.readouterr().err
    stresslab.simulate(book, scenario, 4, seed=1, progress=False)  # quiet means quiet
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(runner, "needs_compiling", lambda *kernels: False)
    stresslab.simulate(book, scenario, 4, seed=1)
    assert "compiling" not in capsys.readouterr().err


def test_needs_compiling_sees_numba_cache(tmp_path):
    """A cached kernel needs compiling in a fresh cache, not once compiled, nor in a new process."""
    (tmp_path / "tiny_kernel.py").write_text(
        "from stresslab._numba import njit, needs_compiling\n\n@njit()\ndef twice(x):\n    return 2 * x\n"
    )
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from tiny_kernel import twice, needs_compiling; "
             "first = needs_compiling(twice); twice(1.0); print(first, needs_compiling(twice))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", probe, str(tmp_path)], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert runs[0].stdout.split() == ["True", "False"]  # empty cache: compiles; then loaded in this process
    assert runs[1].stdout.split() == ["False", "False"]  # a new process finds it in the cache
