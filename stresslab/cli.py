"""Command-line interface: ``stresslab run | synth | validate``. A thin wrapper of the API."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from stresslab.engine import simulate
from stresslab.errors import StresslabError
from stresslab.portfolio import Portfolio, load_portfolio, synthetic_portfolio
from stresslab.results import format_summary, save_results, summary
from stresslab.scenario import load_scenario

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StresslabError as exc:
        if args.traceback:
            traceback.print_exc()
        print(f"stresslab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stresslab: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stresslab", description="Monte Carlo credit stress tests of micro-loan books.")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario on a loan book and print its summary")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    book = run.add_mutually_exclusive_group(required=True)
    book.add_argument("--portfolio", type=Path, help="loan book, CSV or Parquet")
    book.add_argument("--synthetic", type=_positive_int, metavar="N", help="use a synthetic book of N loans")
    run.add_argument("--book-seed", type=_non_negative_int, default=0, help="seed of the synthetic book [0]")
    run.add_argument("--paths", type=_positive_int, required=True, help="Monte Carlo paths")
    run.add_argument("--seed", type=_non_negative_int, required=True, help="simulation seed")
    run.add_argument("--out", type=Path, help="write the full result to this netCDF file")
    run.add_argument("--chunk-size", type=_positive_int, help="paths per chunk (does not change results)")
    run.add_argument("--threads", type=_positive_int, help="numba threads (does not change results)")
    run.add_argument("--levels", type=_levels, default=(0.95, 0.99, 0.999), help="VaR/ES levels [0.95,0.99,0.999]")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    synth = sub.add_parser("synth", help="write a synthetic micro-loan book")
    synth.add_argument("n_loans", type=_positive_int, metavar="N")
    synth.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    synth.add_argument("--seed", type=_non_negative_int, default=0)
    synth.set_defaults(func=_synth)

    validate = sub.add_parser("validate", help="check scenario files; exit 2 on the first bad one")
    validate.add_argument("files", type=Path, nargs="+")
    validate.set_defaults(func=_validate)
    return parser


def _run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    portfolio: Portfolio = (
        load_portfolio(args.portfolio) if args.portfolio is not None else synthetic_portfolio(args.synthetic, seed=args.book_seed)
    )
    ds = simulate(
        portfolio,
        scenario,
        n_paths=args.paths,
        seed=args.seed,
        chunk_size=args.chunk_size,
        threads=args.threads,
        progress=not args.quiet,
    )
    if args.out is not None:
        save_results(ds, args.out)
    print(format_summary(summary(ds, levels=args.levels)))
    if args.out is not None:
        print(f"\nresult written to {args.out}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    book = synthetic_portfolio(args.n_loans, seed=args.seed)
    book.save(args.out)
    print(f"wrote {book.n_loans} loans to {args.out} (digest {book.digest[:12]})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    for path in args.files:
        scenario = load_scenario(path)
        print(f"{path}: ok ({scenario.name}, {scenario.horizon_months} months)")
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


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers in (0, 1); got {text!r}") from None
    if not all(0.0 < x < 1.0 for x in levels):
        raise argparse.ArgumentTypeError(f"levels must be in (0, 1); got {text!r}")
    return levels


if __name__ == "__main__":
    sys.exit(main())
