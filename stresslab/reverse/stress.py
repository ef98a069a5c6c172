"""reverse_stress(): the probability of a failure event and the factor paths that lead to it.

Importance sampling tilted toward the event (cross-entropy, :mod:`stresslab.run.importance`)
gives many event paths with likelihood ratios; their weighted means are the conditional
means of the factors given the event (Glasserman, Kang & Kang 2015), their spread the
intervals, and the event's average innovation path, written as the scenario key
``[factors.innovation_mean]``, is a scenario in which the event is common.
docs/reverse_stress.md gives the estimators.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtr
from scipy.stats import chi2

from stresslab._kernels.arrays import Outputs
from stresslab.book.portfolio import Portfolio
from stresslab.compile.factors import factor_names
from stresslab.compile.model import CompiledModel, compile_model
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci, z_value
from stresslab.reverse.estimates import (
    conditional_mean,
    conditional_share,
    debiased_distance,
    event_mode,
    factor_paths,
)
from stresslab.reverse.events import Event, parse_event
from stresslab.reverse.result import ReverseStress
from stresslab.run.importance import (
    DEFAULT_DEFENSIVE_SHARE,
    pilot_seed,
    tune_toward_event,
)
from stresslab.run.runner import announce_compiling, check_int, run_paths
from stresslab.run.schema import check_finite
from stresslab.scenario.scenario import Scenario

__all__ = ["MIN_EVENT_PATHS", "reverse_stress"]

MIN_EVENT_PATHS = 20  # fewer event paths than this: no conditional path is estimated
_MAX_SEED = 2**63 - 1
_CHECK_ROUND = 1000  # pilot_seed(seed, _CHECK_ROUND): the check run's own draws
_DIGITS = 4  # decimals of the written innovation means (innovation standard deviations)


def reverse_stress(
    portfolio: Portfolio,
    scenario: Scenario,
    event: str | Event,
    n_paths: int = 10_000,
    seed: int = 0,
    *,
    pilot_paths: int | None = None,
    check_paths: int = 2_000,
    defensive_share: float = DEFAULT_DEFENSIVE_SHARE,
    threads: int | None = None,
    progress: bool | None = None,
    ci: float = 0.95,
) -> ReverseStress:
    """Reverse stress test: how likely a failure event is, and the factor paths that lead to it.

    Parameters
    ----------
    portfolio : Portfolio
        The loan book.
    scenario : Scenario
        The model the event's probability is taken under (e.g. the baseline).
    event : str or Event
        ``"loss > 2.5e8"``, ``"net_loss > X"``, ``"loss_12m > X"``, ``"exhausted:fund"``,
        ``"exhausted:fund@12"``, ``"dpd30 > 0.15"`` (:func:`stresslab.reverse.events.parse_event`;
        ``"capital_ratio < R"`` parses but needs the capital model, not built yet).
    n_paths : int
        Importance-sampled paths of the main run (>= 1).
    seed : int
        Seed in [0, 2**63); pilots and the check run use seeds derived from it.
    pilot_paths : int, optional
        Paths per cross-entropy pilot round (default 2,000).
    check_paths : int
        Paths of a plain run of the written scenario, on its own draws, that counts the
        share of its paths in which the event happens (``reproduction``; 0: no run, NaN).
    defensive_share : float
        Share of the main run's paths drawn from the model itself (every weight <= 1 / a).
    threads : int, optional
        Numba threads.
    progress : bool, optional
        Progress bars on stderr (default: when stderr is a terminal).
    ci : float
        Coverage of the intervals, in (0, 1).

    Returns
    -------
    ReverseStress
        ``probability`` (``probability_ci``), ``factor_mean`` (month, factor) with
        ``factor_mean_se``, ``factor_mode``, ``distance`` and ``distance_probability``,
        ``drivers``, ``scenario`` and ``to_toml(path)``; see its docstring.

    Raises
    ------
    StresslabError
        A malformed event (one line naming the allowed forms); an event of probability 0
        (a loss above what the book can lose ...) before any simulation; an event the
        importance sampling reached in fewer than :data:`MIN_EVENT_PATHS` paths.

    Notes
    -----
    With w the paths' likelihood ratios and h the event indicator: P(event) = mean(w h)
    with a normal interval; a conditional mean E[x | event] = sum w h x / sum w h with
    the delta-method s.e. The factor paths are Z_t of the recorded innovations
    (MODEL.md §1). docs/reverse_stress.md has the mode, the distances and the drivers.
    """
    ev = parse_event(event) if isinstance(event, str) else event
    n_paths = check_int("n_paths", n_paths, 1, None)
    seed = check_int("seed", seed, 0, _MAX_SEED)
    check_paths = check_int("check_paths", check_paths, 0, None)
    if check_paths == 1:
        raise StresslabError("check_paths must be 0 (no check run) or at least 2 (a share with an interval); got 1")
    if not 0.0 < ci < 1.0:
        raise StresslabError(f"ci must be strictly between 0 and 1; got {ci}")
    if not 0.0 < defensive_share < 1.0:
        raise StresslabError(f"defensive_share must be strictly between 0 and 1; got {defensive_share}")
    model = compile_model(portfolio, scenario)
    ev.check(model)
    if progress is not False:
        announce_compiling(False)

    def score(out: Outputs) -> np.ndarray:
        return ev.score(out, model)

    tuned, reached = tune_toward_event(model, seed, score, ev.threshold, pilot_paths=pilot_paths, threads=threads,
                                       defensive_share=float(defensive_share), progress=progress)
    out = run_paths(tuned, seed, n_paths, threads=threads, progress=progress, desc="reverse: event paths", record_eta=True)
    check_finite(out, portfolio, scenario)
    values = score(out)
    h, w = ev.occurred(values), out.weight
    v = w * h
    hits = int(h.sum())
    if hits < MIN_EVENT_PATHS:
        raise _unreached(ev, hits, n_paths, reached, float(values.max()), h, w)

    z = z_value(ci)
    p, p_lo, p_hi = mean_ci(h, w, ci)
    deviation = out.eta  # eta_t - m_t: the kernel records the innovations before the scenario's own mean
    base_mean = model.tables.factor_mean
    dev_mean, dev_se = conditional_mean(deviation, v)
    paths = factor_paths(deviation + base_mean, model.tables.sqrt_cov, model.params.ar1)
    z_mean, z_se = conditional_mean(paths, v)
    distance = debiased_distance(dev_mean, dev_se)
    direction = dev_mean / np.linalg.norm(dev_mean)
    mode, mode_se, _, _ = event_mode(np.tensordot(deviation, direction, axes=2), h, w, seed)
    mode_path = factor_paths((base_mean + mode * direction)[None], model.tables.sqrt_cov, model.params.ar1)[0]
    loss = out.loss_gross.sum(axis=1)
    loss_mean, loss_se = conditional_mean(loss, v)

    shift = np.round(dev_mean, _DIGITS)
    written = _written(scenario, model, ev, base_mean + shift, p)
    share, share_ci = _check_run(portfolio, written, ev, seed, check_paths, threads, progress, ci)

    label = _Labels(model)
    return ReverseStress(
        event=ev,
        probability=p,
        probability_ci=(max(p_lo, 0.0), p_hi),
        probability_se=(p - p_lo) / z,
        event_paths=hits,
        effective_event_paths=float(v.sum() ** 2 / (v * v).sum()),
        factor_mean=label.grid(z_mean, 1, "conditional mean of the factor given the event"),
        factor_mean_se=label.grid(z_se, 1, "standard error of the conditional mean of the factor"),
        innovation_mean=label.grid(dev_mean, 0, "conditional mean of the innovation's deviation given the event"),
        innovation_mean_se=label.grid(dev_se, 0, "standard error of the conditional mean of the innovation"),
        factor_mode=label.grid(mode_path, 1, "factor path at the mode of the event along its mean direction"),
        mode_distance=mode,
        mode_distance_se=mode_se,
        distance=distance,
        distance_probability=float(chi2.sf(distance**2, dev_mean.size)),
        direction_probability=float(ndtr(-distance)),
        conditional_loss=float(loss_mean),
        conditional_loss_ci=(float(loss_mean - z * loss_se), float(loss_mean + z * loss_se)),
        drivers=_drivers(out.loss_by_cell, v, w, model),
        scenario=written,
        reproduction=share,
        reproduction_ci=share_ci,
        reproduction_paths=check_paths,
        n_paths=n_paths,
        seed=seed,
        ci=ci,
    )


class _Labels:
    """The (month, factor) labels of a model's factor arrays."""

    def __init__(self, model: CompiledModel) -> None:
        self.names = factor_names(model.industries, model.regions)
        self.kinds = ["global"] + ["industry"] * len(model.industries) + ["region"] * len(model.regions)
        self.plain = ["global", *model.industries, *model.regions]

    def grid(self, values: np.ndarray, first_month: int, long_name: str) -> xr.DataArray:
        months = np.arange(first_month, first_month + values.shape[0], dtype=np.int64)
        return xr.DataArray(
            values, dims=("month", "factor"),
            coords={"month": months, "factor": self.names, "factor_kind": ("factor", self.kinds),
                    "factor_name": ("factor", self.plain)},
            attrs={"long_name": long_name, "units": "standard deviations"},
        )


def _written(scenario: Scenario, model: CompiledModel, ev: Event, means: np.ndarray, p: float) -> Scenario:
    """The scenario with [factors.innovation_mean] set to ``means`` (shape (T + 1, K), the model's order)."""
    n_ind = len(model.industries)
    table = {
        "global": means[:, 0].tolist(),
        "industry": {name: means[:, 1 + k].tolist() for k, name in enumerate(model.industries)},
        "region": {name: means[:, 1 + n_ind + k].tolist() for k, name in enumerate(model.regions)},
    }
    description = (f"Reverse stress test of {scenario.name} for the event '{ev.text}' (probability {p:.3g} under it): "
                   f"its factor innovations shifted to their mean given the event.")
    return scenario.with_overrides({"name": f"{scenario.name}_reverse", "description": description,
                                    "factors.innovation_mean": table})


def _check_run(portfolio: Portfolio, written: Scenario, ev: Event, seed: int, n: int, threads: int | None,
               progress: bool | None, ci: float) -> tuple[float, tuple[float, float]]:
    """Share of event paths in a plain run of the written scenario, with its interval (NaN if n = 0)."""
    if n == 0:
        return float("nan"), (float("nan"), float("nan"))
    model = compile_model(portfolio, written)
    out = run_paths(model, pilot_seed(seed, _CHECK_ROUND), n, threads=threads, progress=progress,
                    desc="reverse: check run of the written scenario")
    share, lo, hi = mean_ci(ev.occurred(ev.score(out, model)), out.weight, ci)
    return share, (max(lo, 0.0), min(hi, 1.0))


def _drivers(loss_by_cell: np.ndarray, v: np.ndarray, w: np.ndarray, model: CompiledModel) -> pd.DataFrame:
    """Share of the gross loss in the event by industry and by region, with the unconditional share."""
    whole = loss_by_cell.sum(axis=(1, 2))
    rows = []
    for kind, parts, names in (("industry", loss_by_cell.sum(axis=2), model.industries),
                               ("region", loss_by_cell.sum(axis=1), model.regions)):
        if float(v @ whole) > 0.0:
            share, se = conditional_share(parts, whole, v)
        else:  # an event without losses (a DPD30+ ratio, say): no shares to give
            share = se = np.full(len(names), np.nan)
        base = (w @ parts) / float(w @ whole) if float(w @ whole) > 0.0 else np.full(len(names), np.nan)
        rows += [(kind, name, share[k], se[k], base[k]) for k, name in enumerate(names)]
    frame = pd.DataFrame(rows, columns=["kind", "name", "share", "share_se", "base_share"])
    frame["lift"] = frame["share"] / frame["base_share"]
    frame = frame.sort_values(["kind", "share"], ascending=[True, False], kind="stable")
    return frame.set_index(["kind", "name"])


def _unreached(ev: Event, hits: int, n_paths: int, reached: float, largest: float, h: np.ndarray,
               w: np.ndarray) -> StresslabError:
    """The error for an event the tilted sampling reached too rarely to estimate its paths."""
    what = f"event {ev.text!r} ({ev.describe()})"
    seen = (f"{ev.measure()}: at most {reached:.6g} in the pilots' elite and {largest:.6g} in the main run, "
            f"against {ev.threshold:.6g}")
    estimate = f"; its probability is about {float(np.mean(h * w)):.2g}" if hits else ""
    return StresslabError(
        f"{what} happened in {hits} of {n_paths:,} importance-sampled paths, fewer than {MIN_EVENT_PATHS} ({seen})"
        f"{estimate}: the sampling cannot reach it well enough to estimate its factor paths; it may be beyond what "
        f"the book can lose under this model; try more n_paths or pilot_paths, or a less extreme event")
