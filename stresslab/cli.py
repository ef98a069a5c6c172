"""Command-line interface: ``stresslab run | compare | sweep | reverse | show | report | synth | synth-history | calibrate | validate``. A thin wrapper of the API."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import tomllib
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import xarray as xr

from stresslab._files import check_output_file
from stresslab.book.history import load_history
from stresslab.book.portfolio import Portfolio, load_portfolio
from stresslab.book.synthetic import synthetic_portfolio
from stresslab.calibrate.fit import calibrate, check_output_place
from stresslab.errors import StresslabError
from stresslab.io import load_results, save_results
from stresslab.metrics.paired import compare_summary
from stresslab.metrics.summary import summary
from stresslab.reverse.events import parse_event
from stresslab.reverse.stress import reverse_stress
from stresslab.run.compare import compare, sweep
from stresslab.run.history import simulate_history
from stresslab.run.schema import check_result_types, package_versions
from stresslab.run.simulate import simulate
from stresslab.scenario.scenario import load_scenario
from stresslab.text import format_comparison, format_reverse_stress, format_summary

__all__ = ["main", "one_line"]

_MAX_LINE = 1000  # characters of an error or warning line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0: done; 2: bad input (one line naming file, field, value and what is allowed);
    1: an internal error (one line, the trace saved to a file to report); 130: interrupted;
    141: the reader of the output went away (``| head``). ``--traceback`` also prints the
    trace of an error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        with _one_line_warnings():
            return int(args.func(args) or 0)
    except StresslabError as exc:
        return _fail(args, f"error: {exc}", 2)
    except MemoryError:
        return _fail(args, "error: out of memory; run fewer paths or a smaller book, or a smaller --chunk-size", 2)
    except KeyboardInterrupt:
        saved = getattr(args, "checkpoint", None) or getattr(args, "resume", None)
        hint = f"; finished chunks are in {saved}: continue with --resume {saved}" if saved else ""
        print(f"stresslab: interrupted, no result written{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _detach_stdout()
        return 141
    except Exception as exc:  # a defect of stresslab (InternalError or not): never a bare traceback
        trace = _save_trace()
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}; please report it with the trace in {trace}", 1)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: cleanly, between chunks, nothing half-written."""
    raise KeyboardInterrupt


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """Print ``message`` as one bounded line on stderr (after the trace with --traceback)."""
    if args.traceback:
        traceback.print_exc()
    print(f"stresslab: {one_line(message)}", file=sys.stderr)
    return status


def one_line(text: str, limit: int | None = _MAX_LINE) -> str:
    """``text`` on one line with control characters escaped, cut to ``limit`` characters.

    Terminal escape sequences in names (``\\x1b[...``) are shown, not obeyed; a cut line
    says how many characters were left out.
    """
    line = "".join(c if c.isprintable() else (" " if c == "\n" else repr(c)[1:-1]) for c in str(text))
    if limit is None or len(line) <= limit:
        return line
    return f"{line[:limit]}... ({len(line) - limit:,} more characters)"


def _print(text: str) -> None:
    """Print program output with control characters escaped line by line (names may hold any)."""
    print("\n".join(one_line(line, limit=None) for line in str(text).split("\n")))


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show warnings as ``stresslab: warning: <one line>`` (they stay catchable by callers)."""
    before = warnings.formatwarning
    warnings.formatwarning = lambda message, *rest, **kw: f"stresslab: warning: {one_line(str(message))}\n"
    try:
        yield
    finally:
        warnings.formatwarning = before


def _save_trace() -> str:
    """Write the current exception's trace to a new file in the temporary folder; its path (or why not)."""
    text = f"stresslab {sys.argv!r}\n{package_versions()}\n\n{traceback.format_exc()}"
    try:
        fd, path = tempfile.mkstemp(prefix="stresslab-trace-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        return f"(none: it could not be saved: {exc}; rerun with --traceback)"
    return path


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the flush at exit does not fail again on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stresslab", description="Monte Carlo credit stress tests of micro-loan books.")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario on a loan book and print its summary")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    _book_and_run_options(run)
    run.add_argument("--levels", type=_levels, default=(0.95, 0.99, 0.999), help="VaR/ES levels [0.95,0.99,0.999]")
    saved = run.add_mutually_exclusive_group()
    saved.add_argument("--checkpoint", type=Path, metavar="DIR", help="save each finished chunk in DIR (resumable)")
    saved.add_argument("--resume", type=Path, metavar="DIR", help="finish the interrupted run saved in DIR")
    run.add_argument("--tail", choices=["is"], help="importance sampling of the loss tail")
    run.add_argument("--target", type=_level, default=0.999, help="quantile the tail sampling aims at [0.999]")
    run.add_argument("--target-loss", type=float, metavar="CNY",
                     help="aim the tail sampling at horizon loss >= CNY instead of the --target quantile")
    run.set_defaults(func=_run)

    comp = sub.add_parser("compare", help="run scenarios on the same draws and print paired differences")
    comp.add_argument("scenarios", type=Path, nargs="+", help="scenario TOML files; the first is the baseline")
    _book_and_run_options(comp)
    comp.add_argument("--levels", type=_levels, default=(0.99, 0.999), help="VaR/ES levels [0.99,0.999]")
    comp.set_defaults(func=_compare)

    swp = sub.add_parser("sweep", help="run a scenario over a grid of one key's values, on the same draws")
    swp.add_argument("scenario", type=Path, help="scenario TOML file")
    swp.add_argument("--set", dest="grid", type=_grid, required=True, metavar="KEY=V1,V2,...",
                     help="dotted key and values, e.g. layers.fund.capacity=0,5e6,1e7")
    _book_and_run_options(swp)
    swp.add_argument("--levels", type=_levels, default=(0.99, 0.999), help="VaR/ES levels [0.99,0.999]")
    swp.add_argument("--plot", type=Path, help="save the response curve (expected loss and VaR) to this PNG")
    swp.set_defaults(func=_sweep)

    rev = sub.add_parser("reverse", help="reverse stress test: the probability of a failure event and its most "
                                         "likely factor paths, written as a scenario (docs/reverse_stress.md)")
    rev.add_argument("scenario", type=Path, help="scenario TOML file the event's probability is taken under")
    _book_options(rev)
    rev.add_argument("--event", required=True, help="'loss > X', 'net_loss > X', 'loss_12m > X', 'exhausted:LAYER[@M]', "
                                                     "'dpd30 > Y' or 'capital_ratio < R'")
    rev.add_argument("--out", type=Path, required=True, help="the scenario of the event's mean factor path (TOML)")
    rev.add_argument("--paths", type=_positive_int, default=10_000, help="importance-sampled paths [10000]")
    rev.add_argument("--seed", type=_non_negative_int, default=0, help="simulation seed [0]")
    rev.add_argument("--pilot-paths", type=_positive_int, help="paths per cross-entropy pilot round [2000]")
    rev.add_argument("--check-paths", type=_non_negative_int, default=2_000,
                     help="paths of a plain run of the written scenario that counts the event in it (0: none) [2000]")
    rev.add_argument("--threads", type=_positive_int, help="numba threads (does not change results)")
    rev.add_argument("--quiet", action="store_true", help="no progress bar")
    rev.set_defaults(func=_reverse)

    show = sub.add_parser("show", help="print the summary table of a result file")
    show.add_argument("result", type=Path, help="netCDF file written by run, compare or sweep")
    show.add_argument("--levels", type=_levels, help="VaR/ES levels")
    show.set_defaults(func=_show)

    report = sub.add_parser("report", help="write a self-contained HTML report of a result file")
    report.add_argument("result", type=Path, help="netCDF file written by run")
    report.add_argument("--out", type=Path, required=True, help="output .html file")
    report.add_argument("--portfolio", type=Path, help="the run's book (adds the book tables and the IRB reference)")
    report.add_argument("--map", type=Path, metavar="MAP.toml", help="book map of --portfolio")
    report.add_argument("--levels", type=_levels, default=(0.95, 0.99, 0.999), help="VaR/ES levels")
    report.set_defaults(func=_report)

    synth = sub.add_parser("synth", help="write a synthetic micro-loan book")
    synth.add_argument("n_loans", type=_positive_int, metavar="N")
    synth.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    synth.add_argument("--seed", type=_non_negative_int, default=0)
    synth.set_defaults(func=_synth)

    inspect = sub.add_parser("inspect", help="print a loan book's profile, and what a scenario would see of it")
    inspect.add_argument("book", type=Path, help="loan book, CSV or Parquet")
    inspect.add_argument("--map", type=Path, metavar="MAP.toml", help="book map of your export (docs/portfolio.md)")
    inspect.add_argument("--scenario", type=Path, help="a scenario: which of its names the book has, what its shocks touch")
    inspect.set_defaults(func=_inspect)

    warmup = sub.add_parser("warmup", help="compile every kernel once (about a minute), so later runs start at once")
    warmup.set_defaults(func=_warmup)

    tape = sub.add_parser("synth-history", help="write the loan tape of one simulated path (docs/history.md)")
    tape.add_argument("n_loans", type=_positive_int, metavar="N", nargs="?", help="synthetic book of N loans")
    tape.add_argument("--portfolio", type=Path, help="loan book (CSV or Parquet) instead of a synthetic one")
    tape.add_argument("--book-seed", type=_non_negative_int, default=0, help="seed of the synthetic book [0]")
    tape.add_argument("--scenario", type=Path, required=True, help="scenario TOML the tape is simulated under")
    tape.add_argument("--months", type=_positive_int, required=True, help="months after the first month-end")
    tape.add_argument("--seed", type=_non_negative_int, required=True, help="simulation seed")
    tape.add_argument("--path", type=_non_negative_int, default=0, help="which Monte Carlo path [0]")
    tape.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    tape.set_defaults(func=_synth_history)

    cal = sub.add_parser("calibrate", help="fit a scenario's delinquency chain to a loan tape (docs/calibration.md)")
    cal.add_argument("history", type=Path, metavar="HISTORY", help="loan tape, CSV or Parquet (docs/history.md)")
    cal.add_argument("--base", type=Path, help="scenario the fitted one extends [built-in defaults]")
    cal.add_argument("--out", type=Path, required=True, help="fitted scenario TOML (in the folder of --base or below)")
    cal.add_argument("--by", help="tape column to fit by segment as well (e.g. industry)")
    cal.add_argument("--default-dpd", type=_non_negative_int, default=90,
                     help="days past due above which a loan is D, for tapes with days_past_due [90]")
    cal.set_defaults(func=_calibrate)

    ecl = sub.add_parser("ecl", help="IFRS 9 stages and expected credit losses of every loan (docs/ifrs9.md)")
    ecl.add_argument("scenario", type=Path, help="scenario TOML whose model the ECL follows")
    _book_options(ecl)
    ecl.add_argument("--relative-pd-multiple", type=float, metavar="X",
                     help="also stage 2: loans whose 12-month PD is above X times their pd [off]")
    ecl.add_argument("--out", type=Path, help="per-loan table: .csv, .parquet or .nc")
    ecl.set_defaults(func=_ecl)

    validate = sub.add_parser("validate", help="check scenario files; exit 2 on the first bad one")
    validate.add_argument("files", type=Path, nargs="+")
    validate.set_defaults(func=_validate)
    return parser


def _book_options(parser: argparse.ArgumentParser) -> None:
    """--portfolio or --synthetic N (one required), --book-seed and --map."""
    book = parser.add_mutually_exclusive_group(required=True)
    book.add_argument("--portfolio", type=Path, help="loan book, CSV or Parquet")
    book.add_argument("--synthetic", type=_positive_int, metavar="N", help="use a synthetic book of N loans")
    parser.add_argument("--book-seed", type=_non_negative_int, default=0, help="seed of the synthetic book [0]")
    parser.add_argument("--map", type=Path, metavar="MAP.toml",
                        help="book map: how your export's columns, codes and units become the book (docs/portfolio.md)")


def _book_and_run_options(parser: argparse.ArgumentParser) -> None:
    _book_options(parser)
    parser.add_argument("--paths", type=_positive_int, required=True, help="Monte Carlo paths")
    parser.add_argument("--seed", type=_non_negative_int, required=True, help="simulation seed")
    parser.add_argument("--out", type=Path, help="write the full result to this netCDF file")
    parser.add_argument("--chunk-size", type=_positive_int, help="paths per chunk (does not change results)")
    parser.add_argument("--threads", type=_positive_int, help="numba threads (does not change results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--pooled", action="store_true",
                        help="draw identical loans' transitions as binomial counts (books of millions of standard loans)")
    dask = parser.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask scheduler (tcp://host:port or scheduler file)")
    dask.add_argument("--workers", type=_positive_int, metavar="N", help="run on a local Dask cluster of N workers")


def _book(args: argparse.Namespace) -> Portfolio:
    if args.portfolio is not None:
        return load_portfolio(args.portfolio, book_map=args.map)
    return synthetic_portfolio(args.synthetic, seed=args.book_seed)


def _run_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "chunk_size": args.chunk_size,
        "threads": args.threads,
        "progress": not args.quiet,
        "scheduler": args.scheduler,
        "workers": args.workers,
        "pooled": args.pooled,
    }


def _write(ds: xr.Dataset, path: Path | None) -> None:
    if path is not None:
        save_results(ds, path)
        _print(f"\nresult written to {path}")


def _check_outputs(args: argparse.Namespace, *inputs: Path | None) -> None:
    """Refuse ``--out`` (and ``--plot``) before any work: an input of the command, not a regular file, no folder."""
    sources = [path for path in (*inputs, getattr(args, "map", None)) if path is not None]
    for option in ("out", "plot"):
        if getattr(args, option, None) is not None:
            check_output_file(getattr(args, option), sources, f"--{option}")


def _run(args: argparse.Namespace) -> int:
    _check_outputs(args, args.scenario, args.portfolio)
    scenario = load_scenario(args.scenario)
    _check_outputs(args, *map(Path, scenario.files))  # its parents and calibration reference too
    ds = simulate(
        _book(args),
        scenario,
        n_paths=args.paths,
        seed=args.seed,
        tail=args.tail,
        target=args.target,
        target_loss=args.target_loss,
        checkpoint=args.checkpoint or args.resume,
        resume=args.resume is not None,
        **_run_options(args),
    )
    _print(format_summary(summary(ds, levels=args.levels)))
    _write(ds, args.out)
    return 0


def _compare(args: argparse.Namespace) -> int:
    _check_outputs(args, *args.scenarios, args.portfolio)
    scenarios = [load_scenario(path) for path in args.scenarios]
    _check_outputs(args, *(Path(f) for scen in scenarios for f in scen.files))
    ds = compare(_book(args), scenarios, args.paths, args.seed, **_run_options(args))
    _print(format_comparison(compare_summary(ds, levels=args.levels)))
    _write(ds, args.out)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    _check_outputs(args, args.scenario, args.portfolio)
    key, values = args.grid
    scenario = load_scenario(args.scenario)
    _check_outputs(args, *map(Path, scenario.files))
    ds = sweep(_book(args), scenario, key, values, args.paths, args.seed, **_run_options(args))
    result = compare_summary(ds, levels=args.levels)
    _print(format_comparison(result))
    if args.plot is not None:
        from stresslab import plots  # matplotlib only when a plot is asked for

        plots.save_figure(plots.sweep_curve(ds), args.plot)
        _print(f"\nresponse curve written to {args.plot}")
    _write(ds, args.out)
    return 0


def _reverse(args: argparse.Namespace) -> int:
    event = parse_event(args.event)  # a malformed event fails before the book is read
    _check_outputs(args, args.scenario, args.portfolio)
    scenario = load_scenario(args.scenario)
    _check_outputs(args, *map(Path, scenario.files))
    result = reverse_stress(_book(args), scenario, event, n_paths=args.paths, seed=args.seed,
                            pilot_paths=args.pilot_paths, check_paths=args.check_paths, threads=args.threads,
                            progress=not args.quiet)
    _print(format_reverse_stress(result))
    result.to_toml(args.out)
    _print(f"\nscenario of the event's mean factor path written to {args.out}")
    return 0


def _load_result(path: Path) -> xr.Dataset:
    """A run or comparison from a file, its variables checked before any summary uses them."""
    ds = load_results(path)
    check_result_types(ds)
    return ds


def _show(args: argparse.Namespace) -> int:
    ds = _load_result(args.result)
    if "scenario" in ds.dims:
        _print(format_comparison(compare_summary(ds, **({"levels": args.levels} if args.levels else {}))))
    else:
        _print(format_summary(summary(ds, **({"levels": args.levels} if args.levels else {}))))
    return 0


def _report(args: argparse.Namespace) -> int:
    from stresslab.report.html import (
        write_report,  # matplotlib only when a report is asked for
    )

    _check_outputs(args, args.result, args.portfolio)
    portfolio = load_portfolio(args.portfolio, book_map=args.map) if args.portfolio is not None else None
    write_report(_load_result(args.result), args.out, portfolio=portfolio, levels=args.levels)
    _print(f"report written to {args.out}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    _check_outputs(args)
    book = synthetic_portfolio(args.n_loans, seed=args.seed)
    book.save(args.out)
    _print(f"wrote {book.n_loans} loans to {args.out} (digest {book.digest[:12]})")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from stresslab.text import format_book

    book = load_portfolio(args.book, book_map=args.map)
    scenario = load_scenario(args.scenario) if args.scenario is not None else None
    _print(format_book(book, scenario))
    return 0


def _ecl(args: argparse.Namespace) -> int:
    from stresslab.compile.provisions import expected_credit_loss
    from stresslab.io import check_table_suffix, save_loan_table
    from stresslab.metrics.ifrs9 import stage_summary
    from stresslab.text import format_stages

    _check_outputs(args, args.scenario, args.portfolio)
    if args.out is not None:
        check_table_suffix(args.out)
    scenario = load_scenario(args.scenario)
    _check_outputs(args, *map(Path, scenario.files))
    from stresslab._kernels.ecl import loan_expected_losses
    from stresslab._numba import needs_compiling

    if needs_compiling(loan_expected_losses):
        print("stresslab: compiling the ECL kernel (first run only, about half a minute) ...", file=sys.stderr, flush=True)
    ecl = expected_credit_loss(_book(args), scenario, relative_pd_multiple=args.relative_pd_multiple)
    _print(format_stages(stage_summary(ecl)))
    if args.out is not None:
        save_loan_table(ecl, args.out)
        _print(f"per-loan table written to {args.out}")
    return 0


def _warmup(args: argparse.Namespace) -> int:
    from stresslab.run.warmup import warm_up_kernels

    _print("compiling (or loading from numba's cache) the kernels of every kind of run ...")
    _print(f"kernels ready in {warm_up_kernels():.1f} s; later runs load them from numba's cache")
    return 0


def _synth_history(args: argparse.Namespace) -> int:
    if (args.n_loans is None) == (args.portfolio is None):
        raise StresslabError("synth-history needs a book: N (a synthetic book of N loans) or --portfolio, not both")
    _check_outputs(args, args.scenario, args.portfolio)
    scenario = load_scenario(args.scenario)
    book = load_portfolio(args.portfolio) if args.portfolio is not None else synthetic_portfolio(args.n_loans, seed=args.book_seed)
    tape = simulate_history(book, scenario, args.months, args.seed, path=args.path)
    tape.save(args.out)
    _print(f"wrote {len(tape):,} rows ({tape.n_loans:,} loans, {tape.months[0]}..{tape.months[-1]}) to {args.out}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    _check_outputs(args, args.history, args.base)
    base = load_scenario(args.base) if args.base is not None else None
    if base is not None:
        _check_outputs(args, *map(Path, base.files))
        check_output_place(base.source, args.out)
    result = calibrate(load_history(args.history, default_dpd=args.default_dpd), base, by=args.by)
    result.save(args.out)
    _print(f"fitted scenario written to {args.out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    for path in args.files:
        scenario = load_scenario(path)
        _print(f"{path}: ok ({scenario.name}, {scenario.horizon_months} months)")
    return 0


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def _grid(text: str) -> tuple[str, list[object]]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=V1,V2,...; got {text!r}")
    return key.strip(), [_toml_value(v.strip()) for v in values.split(",")]


def _toml_value(text: str) -> object:
    """A TOML scalar (number, boolean, quoted string); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _level(text: str) -> float:
    levels = _levels(text)
    if len(levels) != 1:
        raise argparse.ArgumentTypeError(f"must be one number in (0, 1); got {text!r}")
    return levels[0]


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers in (0, 1); got {text!r}") from None
    if not all(0.0 < x < 1.0 for x in levels):
        raise argparse.ArgumentTypeError(f"levels must be in (0, 1); got {text!r}")
    return tuple(dict.fromkeys(levels))  # a level named twice is reported once


if __name__ == "__main__":
    sys.exit(main())
