"""The command line, through main([...]) as a user would type it."""

from __future__ import annotations

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
