"""stresslab against its peers on their own problems: time ratios and peak memory.

Run: python benchmarks/bench_peers.py [--make-venvs DIR | --venvs DIR] [--repeat 3]
                                      [--rows KEY,...] [--quick]

Each row is a one-period portfolio problem that a peer solves: the same book (PD, EAD,
LGD and factor loading per name, written to one .npz file), the same copula and the same
path count on both sides. The peers:

- creditriskengine ``simulate_single_factor`` (one-factor Gaussian copula, numpy);
- FinancePy ``default_times_gc`` and ``StudentTCopula.default_times`` (default times from
  survival curves; a name defaults in the period when its time is below 1.0).

A peer importable here runs side by side in this process. Otherwise it runs from a venv
of its own: ``--make-venvs DIR`` creates ``DIR/<peer>`` and pip-installs the pinned peer
there (the only thing that installs anything), ``--venvs DIR`` uses venvs made before.
Such a peer runs in a child process that reads the same book file and is timed there,
call by call; its start-up and imports are measured on the shared monotonic clock and
left out. A peer that is not available is named, with how to get it, and its rows are
skipped. Peak memory is measured the same way for both sides, in a child process: its
peak resident size (VmHWM) and the rise over its resident size before the first call.

Before a row's times count, the two loss samples are checked against each other: the
expected loss and P(L > VaR99 of stresslab's sample) must agree within z combined
standard errors (antithetic samples are taken as pairs). The ratio is peer time /
stresslab time, best of --repeat calls after a warm-up, the two sides in turn: above 1,
stresslab is faster. docs/performance.md explains how each peer's inputs map onto the book.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

#: The pinned peer each venv gets (--make-venvs), by the name it is imported as.
PEER_PACKAGES = {
    "creditriskengine": "creditriskengine==0.31.0",
    "financepy": "financepy==1.1.2",
}
#: Why a peer may not import in stresslab's environment.
PEER_NOTES = {
    "creditriskengine": "it requires pandas < 3 (pip install -e '.[peers]' holds pandas at 2.x)",
    "financepy": "it pins numba < 0.63 and stresslab needs numba 0.68: it needs a venv of its own",
}
WARMUP_PATHS = 200
#: Each side's seed: the two samples of a row are independent.
SEEDS = {"stresslab": 1, "creditriskengine": 2, "financepy": 2}

Run = Callable[[int, int], np.ndarray]
"""A prepared side: (n_paths, seed) -> ndarray of shape (n_paths,), the loss of each path."""


# --------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class Book:
    """A one-period book: one default event per name, loss EAD x LGD on default.

    Attributes
    ----------
    pd : ndarray of shape (n_names,)
        Probability of default in the period.
    ead : ndarray of shape (n_names,)
        Exposure at default (currency units).
    lgd : ndarray of shape (n_names,)
        Loss given default (share of EAD).
    loading : ndarray of shape (n_names,)
        Loading on the one systematic factor; asset correlation rho = loading**2.
    copula : str
        "gaussian" or "t".
    dof : float
        Degrees of freedom of the t copula (ignored for "gaussian").
    """

    pd: np.ndarray
    ead: np.ndarray
    lgd: np.ndarray
    loading: np.ndarray
    copula: str
    dof: float

    @property
    def n_names(self) -> int:
        """Number of names (loans) in the book."""
        return int(self.pd.size)


def make_book(
    n_names: int, copula: str = "gaussian", dof: float = 5.0, seed: int = 0
) -> Book:
    """The benchmark book: PD U(0.5%, 5%), EAD lognormal(11, 0.8), LGD 45%, rho 0.2.

    One LGD and one loading for the whole book, because creditriskengine takes one rho and
    stresslab's recovery rate is a scenario parameter.
    """
    rng = np.random.default_rng(seed)
    return Book(
        pd=rng.uniform(0.005, 0.05, n_names),
        ead=rng.lognormal(11.0, 0.8, n_names),
        lgd=np.full(n_names, 0.45),
        loading=np.full(n_names, np.sqrt(0.2)),
        copula=copula,
        dof=float(dof),
    )


def write_book(path: Path, book: Book) -> None:
    """Write ``book`` to an .npz file that :func:`read_book` reads back exactly."""
    np.savez(
        path,
        pd=book.pd,
        ead=book.ead,
        lgd=book.lgd,
        loading=book.loading,
        copula=np.str_(book.copula),
        dof=np.float64(book.dof),
    )


def read_book(path: Path) -> Book:
    """Read a book written by :func:`write_book`."""
    with np.load(path) as f:
        return Book(
            pd=f["pd"],
            ead=f["ead"],
            lgd=f["lgd"],
            loading=f["loading"],
            copula=str(f["copula"]),
            dof=float(f["dof"]),
        )


def _one_value(values: np.ndarray, what: str, side: str) -> float:
    """The single value of ``values``; a ValueError if the book has several."""
    if not np.all(values == values[0]):
        raise ValueError(
            f"{side} takes one {what} for the whole book; the book has several"
        )
    return float(values[0])


# --------------------------------------------------------------------------- the sides


def stresslab_inputs(book: Book) -> tuple[Any, Any]:
    """The book as a stresslab Portfolio and Scenario: bullet loans due in month 1.

    MODEL.md §9's one-period case: horizon 1, default_after 1, pd_horizon_months 1 (so
    the entry threshold is F^-1(PD) exactly), one global factor with loading sqrt(rho),
    balance = EAD at a zero rate, and a deterministic recovery of 1 - LGD of EAD.
    """
    import pandas as pd

    import stresslab

    n = book.n_names
    frame = pd.DataFrame(
        {
            "loan_id": [f"L{j:06d}" for j in range(n)],
            "borrower_id": [f"B{j:06d}" for j in range(n)],
            "borrower_type": "enterprise",
            "industry": "all",
            "region": "all",
            "balance": book.ead,
            "annual_rate": 0.0,
            "remaining_term": 1,
            "amortization": "bullet",
            "pd": book.pd,
        }
    )
    factors: dict[str, object] = {
        "global_loading": _one_value(book.loading, "loading", "this benchmark"),
        "industry_loading": 0.0,
        "region_loading": 0.0,
    }
    if book.copula == "t":
        factors.update(copula="t", dof=book.dof)
    lgd = _one_value(book.lgd, "LGD", "stresslab")
    scenario = stresslab.Scenario.from_dict(
        {
            "name": "bench_peers_one_period",
            "horizon_months": 1,
            "pd_horizon_months": 1,
            "factors": factors,
            "delinquency": {"default_after": 1},
            "recovery": {
                "unsecured_mean": 1.0 - lgd,
                "dispersion": 0.0,
                "lag_months": 0,
                "cost": 0.0,
                "cycle_sensitivity": 0.0,
                "lgd_sensitivity": 0.0,
            },
        }
    )
    return stresslab.Portfolio.from_frame(frame, source="<bench_peers book>"), scenario


def _stresslab() -> Callable[[Book], Run]:
    """stresslab.simulate, the whole call a user makes (compile, kernel, Dataset)."""
    import stresslab

    def prepare(book: Book) -> Run:
        portfolio, scenario = stresslab_inputs(book)

        def run(n_paths: int, seed: int) -> np.ndarray:
            ds = stresslab.simulate(
                portfolio, scenario, n_paths=n_paths, seed=seed, progress=False
            )
            return ds.loss_gross.values.sum(axis=1)

        return run

    return prepare


def _creditriskengine() -> Callable[[Book], Run]:
    """creditriskengine.portfolio.simulate_single_factor with its defaults (antithetic)."""
    from creditriskengine.portfolio.copula import simulate_single_factor

    def prepare(book: Book) -> Run:
        if book.copula != "gaussian":
            raise ValueError(
                "creditriskengine's simulate_single_factor is a Gaussian copula"
            )
        rho = _one_value(book.loading, "loading", "creditriskengine") ** 2

        def run(n_paths: int, seed: int) -> np.ndarray:
            return simulate_single_factor(
                book.pd, book.lgd, book.ead, rho, n_simulations=n_paths, seed=seed
            )

        return run

    return prepare


def _financepy() -> Callable[[Book], Run]:
    """FinancePy default_times_gc / StudentTCopula on flat-hazard curves, horizon 1.0.

    Each name's curve has survival Q(1) = 1 - PD (hazard -log(1 - PD)); a name defaults in
    the period when its default time is below 1.0. FinancePy returns 2 x num_trials
    antithetic columns, so num_trials = n_paths / 2 gives n_paths loss scenarios.
    """
    from financepy.market.curves.cds_curve import CDSCurve
    from financepy.market.curves.flat_discount_curve import FlatDiscountCurve
    from financepy.models.gauss_copula import default_times_gc
    from financepy.models.student_t_copula import StudentTCopula
    from financepy.utils.date import Date

    def prepare(book: Book) -> Run:
        value_dt = Date(1, 1, 2025)
        discount = FlatDiscountCurve(value_dt, 0.0)
        curves = []
        for pd_j in book.pd:
            curve = CDSCurve(
                value_dt, [], discount, 0.0
            )  # no contracts: the curve is set below
            curve.set_times(np.array([0.0, 1.0]))
            curve.set_qs(np.array([1.0, 1.0 - pd_j]))
            curves.append(curve)
        corr = np.outer(book.loading, book.loading)
        np.fill_diagonal(corr, 1.0)
        loss_given_default = book.ead * book.lgd

        def run(n_paths: int, seed: int) -> np.ndarray:
            if book.copula == "t":
                times = StudentTCopula().default_times(
                    curves, corr, book.dof, n_paths // 2, seed
                )
            else:
                times = default_times_gc(curves, corr, n_paths // 2, seed)
            return (times < 1.0).T @ loss_given_default

        return run

    return prepare


SIDES: dict[str, Callable[[], Callable[[Book], Run]]] = {
    "stresslab": _stresslab,
    "creditriskengine": _creditriskengine,
    "financepy": _financepy,
}
#: Sides whose loss samples come in antithetic pairs (path i with path i + n_paths / 2).
ANTITHETIC = {"stresslab": False, "creditriskengine": True, "financepy": True}


# --------------------------------------------------------------------------- the check


def _mean_and_se(x: np.ndarray, antithetic: bool) -> tuple[float, float]:
    """Mean of ``x`` and its standard error; antithetic pairs (i, i + n/2) are one draw."""
    units = 0.5 * (x[: x.size // 2] + x[x.size // 2 :]) if antithetic else x
    return float(units.mean()), float(units.std(ddof=1) / np.sqrt(units.size))


@dataclass(frozen=True)
class Check:
    """Two loss samples compared: EL and P(L > v), v = VaR at ``level`` of sample a."""

    el: tuple[float, float]
    el_se: float
    var: float
    tail: tuple[float, float]
    tail_se: float
    z: float

    @property
    def ok(self) -> bool:
        """Both differences within z combined standard errors."""
        return (
            abs(self.el[0] - self.el[1]) <= self.z * self.el_se
            and abs(self.tail[0] - self.tail[1]) <= self.z * self.tail_se
        )

    def describe(self, a: str, b: str) -> str:
        """One line: both estimates, the differences and the tolerances."""
        verdict = "agree" if self.ok else "DISAGREE"
        return (
            f"{verdict}: EL {a} {self.el[0]:,.0f} vs {b} {self.el[1]:,.0f} "
            f"(|diff| {abs(self.el[0] - self.el[1]):,.0f}, tol {self.z:g} se = {self.z * self.el_se:,.0f}); "
            f"P(L > {self.var:,.0f}) {self.tail[0]:.5f} vs {self.tail[1]:.5f} "
            f"(|diff| {abs(self.tail[0] - self.tail[1]):.5f}, tol {self.z:g} se = {self.z * self.tail_se:.5f})"
        )


def compare_losses(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_antithetic: bool = False,
    b_antithetic: bool = False,
    level: float = 0.99,
    z: float = 4.0,
) -> Check:
    """Check two loss samples of one model against each other within Monte Carlo error.

    Parameters
    ----------
    a, b : ndarray of shape (n_a,), (n_b,)
        Loss per path of the two sides.
    a_antithetic, b_antithetic : bool
        The sample is antithetic pairs (path i with i + n / 2): the standard errors are
        those of the pair means.
    level : float
        The tail probability is P(L > v) with v the ``level`` quantile of ``a``.
    z : float
        Tolerance in combined standard errors, sqrt(se_a**2 + se_b**2).
    """
    el_a, se_a = _mean_and_se(a, a_antithetic)
    el_b, se_b = _mean_and_se(b, b_antithetic)
    var = float(np.quantile(a, level, method="inverted_cdf"))
    p_a, sp_a = _mean_and_se((a > var).astype(float), a_antithetic)
    p_b, sp_b = _mean_and_se((b > var).astype(float), b_antithetic)
    return Check(
        el=(el_a, el_b),
        el_se=float(np.hypot(se_a, se_b)),
        var=var,
        tail=(p_a, p_b),
        tail_se=float(np.hypot(sp_a, sp_b)),
        z=z,
    )


# --------------------------------------------------------------------------- runners


def _status_bytes(field: str) -> float:
    """A size field of /proc/self/status (VmRSS, VmHWM) in bytes, 0 if unknown.

    VmHWM, the peak resident size, belongs to the process image: unlike ru_maxrss it
    does not carry over the parent's peak through fork and exec.
    """
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024.0
    return 0.0


class InProcess:
    """A side run in this process: each call timed with perf_counter."""

    def __init__(self, side: str, book: Book) -> None:
        self.side = side
        self._run = SIDES[side]()(book)
        self._run(WARMUP_PATHS, 0)
        self._losses = np.empty(0)

    def run(self, n_paths: int, seed: int) -> float:
        """Seconds of one call; keeps its losses."""
        t0 = time.perf_counter()
        self._losses = self._run(n_paths, seed)
        return time.perf_counter() - t0

    def losses(self) -> np.ndarray:
        """Losses of the last call, ndarray of shape (n_paths,)."""
        return self._losses

    def close(self) -> dict[str, float]:
        """Nothing to stop; no memory figure (see :func:`peak_memory`)."""
        return {}


class Child:
    """A side run by ``python bench_peers.py --worker`` in a child process.

    The child imports the side, reads the book file, warms up and then answers one JSON
    command a line on stdin (run, losses, quit) on a private copy of its stdout; whatever
    the peer prints goes to a log file. The call is timed in the child.
    """

    def __init__(
        self, side: str, book_file: Path, python: str, env: dict[str, str], log: Path
    ) -> None:
        self.side = side
        self._log = log
        spawned_at = time.perf_counter()
        cmd = [
            python,
            str(Path(__file__).resolve()),
            "--worker",
            side,
            "--book",
            str(book_file),
            "--spawned-at",
            repr(spawned_at),
        ]
        with open(log, "w", encoding="utf-8") as err:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        self.ready = self._reply()

    def _reply(self) -> dict[str, float]:
        line = self._proc.stdout.readline()
        answer = json.loads(line) if line else {"error": "the child exited"}
        if "error" in answer:
            tail = self._log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{self.side} worker: {answer['error']}\n{tail}")
        return answer

    def _ask(self, **command: object) -> dict[str, float]:
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def run(self, n_paths: int, seed: int) -> float:
        """Seconds of one call in the child."""
        return self._ask(cmd="run", paths=n_paths, seed=seed)["seconds"]

    def losses(self) -> np.ndarray:
        """Losses of the child's last call, ndarray of shape (n_paths,)."""
        path = self._log.with_suffix(".npy")
        self._ask(cmd="losses", file=str(path))
        return np.load(path)

    def close(self) -> dict[str, float]:
        """Stop the child: its peak and pre-call resident sizes (bytes)."""
        stats = self._ask(cmd="quit")
        self._proc.wait(timeout=60)
        return stats


def worker(side: str, book_file: Path, spawned_at: float) -> None:
    """The child's loop (see :class:`Child`): time calls of ``side`` on the book."""
    proto: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the peer's own prints go to the log, not into the protocol

    def say(**answer: object) -> None:
        proto.write(json.dumps(answer) + "\n")

    try:
        prepare = SIDES[side]()
        imported_at = time.perf_counter()
        run = prepare(read_book(book_file))
        prepared_at = time.perf_counter()
        run(WARMUP_PATHS, 0)
        say(
            startup_import_s=imported_at - spawned_at,
            setup_s=prepared_at - imported_at,
            warmup_s=time.perf_counter() - prepared_at,
        )
        rss_before = 0.0
        losses = np.empty(0)
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "run":
                rss_before = rss_before or _status_bytes("VmRSS")
                t0 = time.perf_counter()
                losses = run(command["paths"], command["seed"])
                say(seconds=time.perf_counter() - t0)
            elif command["cmd"] == "losses":
                np.save(command["file"], losses)
                say(saved=command["file"])
            else:
                say(peak_bytes=_status_bytes("VmHWM"), rss_before_bytes=rss_before)
                return
    except Exception:  # noqa: BLE001 - the parent prints it with the log
        say(error=traceback.format_exc())
        sys.exit(1)


# --------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Row:
    """One benchmark row: a peer's problem, the book and the path count."""

    key: str
    work: str
    peer: str
    n_names: int
    n_paths: int
    copula: str = "gaussian"
    dof: float = 5.0


ROWS = (
    Row(
        "cre-200",
        "one-period Gaussian copula, 200 names, 200,000 paths",
        "creditriskengine",
        200,
        200_000,
    ),
    Row(
        "cre-2000",
        "the same, 2,000 names, 50,000 paths",
        "creditriskengine",
        2_000,
        50_000,
    ),
    Row(
        "fp-gauss",
        "one-period Gaussian, 200 names, 20,000 paths",
        "financepy",
        200,
        20_000,
    ),
    Row(
        "fp-t5",
        "one-period t(5), 200 names, 4,000 paths",
        "financepy",
        200,
        4_000,
        "t",
        5.0,
    ),
)


@dataclass
class Where:
    """How to run a side: in this process, or a python and environment for a child."""

    python: str | None
    env: dict[str, str]


def _importable(module: str) -> bool:
    """True when ``module`` imports in this process."""
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any failure to import means: not here
        return False
    return True


def _venv_env(venv: Path) -> dict[str, str]:
    """This environment for a process in ``venv``: no PYTHONPATH, numba's cache its own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NUMBA_CACHE_DIR"] = str(venv / "numba-cache")
    return env


def make_venv(root: Path, peer: str) -> Path:
    """Create ``root/peer`` (if absent) and pip-install the pinned peer into it; its python."""
    venv = root / peer
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGES[peer]],
        check=True,
        env=_venv_env(venv),
    )
    return python


def locate(peer: str, venvs: Path | None, make: bool) -> Where | str:
    """Where ``peer`` runs, or why it cannot (a message saying how to get it)."""
    if _importable(peer):
        return Where(None, dict(os.environ))
    python = venvs / peer / "bin" / "python" if venvs else None
    if make and venvs:
        python = make_venv(venvs, peer)
    if python and python.exists():
        return Where(str(python), _venv_env(venvs / peer))
    return (
        f"{peer} is missing: not importable here ({PEER_NOTES[peer]}) and no venv"
        f"{f' at {venvs / peer}' if venvs else ''}; run with --make-venvs DIR to pip-install "
        f"{PEER_PACKAGES[peer]} into DIR/{peer}, or --venvs DIR to use one made before"
    )


def peak_memory(
    side: str, book_file: Path, where: Where, n_paths: int, log: Path
) -> dict[str, float]:
    """Peak and pre-call resident sizes (bytes) of one call of ``side`` in a child process."""
    child = Child(side, book_file, where.python or sys.executable, where.env, log)
    child.run(n_paths, SEEDS[side])
    return child.close()


def _runner(
    side: str, book: Book, book_file: Path, where: Where, log: Path
) -> InProcess | Child:
    return (
        InProcess(side, book)
        if where.python is None
        else Child(side, book_file, where.python, where.env, log)
    )


def _gib(stats: dict[str, float]) -> str:
    return f"{stats['peak_bytes'] / 2**30:.2f} GiB (+{(stats['peak_bytes'] - stats['rss_before_bytes']) / 2**30:.2f})"


def bench_row(
    row: Row, where: Where, work: Path, repeat: int, scale: float, z: float
) -> dict[str, object]:
    """Run one row: both sides in turn, the check, the ratio and the memory."""
    n_paths = max(2 * int(row.n_paths * scale / 2), 2 * WARMUP_PATHS)
    book = make_book(row.n_names, row.copula, row.dof)
    book_file = work / f"{row.key}.npz"
    write_book(book_file, book)
    here = Where(None, dict(os.environ))
    sides = {
        "stresslab": _runner(
            "stresslab", book, book_file, here, work / f"{row.key}-stresslab.log"
        ),
        row.peer: _runner(
            row.peer, book, book_file, where, work / f"{row.key}-{row.peer}.log"
        ),
    }
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(repeat):
        for name, side in sides.items():
            best[name] = min(best[name], side.run(n_paths, SEEDS[name]))
    check = compare_losses(
        sides["stresslab"].losses(),
        sides[row.peer].losses(),
        b_antithetic=ANTITHETIC[row.peer],
        z=z,
    )
    peer_runner = sides[row.peer]
    child = peer_runner.ready if isinstance(peer_runner, Child) else None
    memory = {name: side.close() for name, side in sides.items()}
    for name in sides:
        if not memory[name]:
            memory[name] = peak_memory(
                name,
                book_file,
                where if name == row.peer else here,
                n_paths,
                work / f"{row.key}-{name}-memory.log",
            )
    return {
        "row": row,
        "n_paths": n_paths,
        "best": best,
        "check": check,
        "child": child,
        "memory": memory,
    }


def _print_results(results: list[dict[str, object]], repeat: int) -> None:
    print(
        f"\n| work | peer | peer s | stresslab s | ratio (best of {repeat}) | peak memory peer | "
        f"peak memory stresslab | results |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        row, best, check = r["row"], r["best"], r["check"]
        ratio = (
            f"{best[row.peer] / best['stresslab']:.2f}"
            if check.ok
            else "n/a (check failed)"
        )
        paths = "" if r["n_paths"] == row.n_paths else f" ({r['n_paths']:,} paths)"
        print(
            f"| {row.work}{paths} | {row.peer} | {best[row.peer]:.3f} | {best['stresslab']:.3f} | {ratio} | "
            f"{_gib(r['memory'][row.peer])} | {_gib(r['memory']['stresslab'])} | "
            f"{'agree' if check.ok else 'DISAGREE'} |"
        )


def main() -> None:
    """Parse the command line and run the rows (or the child's worker loop)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venvs", type=Path, help="use peers' venvs made before in DIR/<peer>"
    )
    parser.add_argument(
        "--make-venvs",
        type=Path,
        metavar="DIR",
        help="create DIR/<peer> venvs and pip-install the pinned peers there",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rows", default=",".join(r.key for r in ROWS), help="comma-separated row keys"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the paths (a smoke run)"
    )
    parser.add_argument(
        "--z",
        type=float,
        default=4.0,
        help="check tolerance in combined standard errors",
    )
    parser.add_argument("--worker", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.book, args.spawned_at)
        return
    venvs = args.make_venvs or args.venvs
    keys = args.rows.split(",")
    unknown = sorted(set(keys) - {r.key for r in ROWS})
    if unknown:
        parser.error(f"unknown rows {unknown}; the rows are {[r.key for r in ROWS]}")
    rows = [r for r in ROWS if r.key in keys]
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    located = {
        peer: locate(peer, venvs, bool(args.make_venvs))
        for peer in sorted({r.peer for r in rows})
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_peers-") as tmp:
        for row in rows:
            where = located[row.peer]
            if isinstance(where, str):
                print(f"skipped {row.key}: {where}")
                continue
            how = (
                "in this process"
                if where.python is None
                else f"in a child process ({where.python})"
            )
            print(f"{row.key}: {row.work}; {row.peer} {how}", flush=True)
            r = bench_row(
                row, where, Path(tmp), args.repeat, 0.1 if args.quick else 1.0, args.z
            )
            if r["child"] is not None:
                c = r["child"]
                print(
                    f"  {row.peer} child: start-up + import {c['startup_import_s']:.2f} s, "
                    f"set-up {c['setup_s']:.2f} s, warm-up {c['warmup_s']:.2f} s "
                    "(measured, not counted)"
                )
            print(f"  check: {r['check'].describe('stresslab', row.peer)}", flush=True)
            results.append(r)
    if results:
        _print_results(results, args.repeat)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not all(r["check"].ok for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
