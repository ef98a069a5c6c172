"""The result of a reverse stress test, and its scenario file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr
from scipy.special import ndtri

from stresslab._files import write_atomically
from stresslab.reverse.events import Event
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.writer import scenario_toml

__all__ = ["ReverseStress"]


@dataclass(frozen=True, kw_only=True, eq=False)
class ReverseStress:
    """What it takes to reach a failure event: its probability and its most likely factor paths.

    Built by :func:`stresslab.reverse_stress`; docs/reverse_stress.md gives every
    estimator and interval. Intervals are normal, at the coverage ``ci``. Not compared
    (``==`` is identity): it holds arrays and tables.

    Attributes
    ----------
    event : Event
    probability : float
        P(event) under the scenario, from the importance-sampled paths.
    probability_ci : (float, float)
        Its interval (the lower end clipped at 0).
    probability_se : float
    event_paths : int
        Paths in which the event happened.
    effective_event_paths : float
        (sum v)^2 / sum v^2 with v = w h: the plain sample of event paths worth as much.
    factor_mean, factor_mean_se : xarray.DataArray
        Dims (month, factor), months 1..T: E[Z_t | event] of every factor (``global``,
        ``industry:<name>``, ``region:<name>``; coords ``factor_kind``, ``factor_name``) and
        its standard error. :meth:`factor_mean_ci` gives the interval.
    innovation_mean, innovation_mean_se : xarray.DataArray
        Dims (month, factor), months 0..T (0: the start): E[eta_t - m_t | event], the
        conditional mean of the innovations' deviation from the scenario's own mean m_t;
        what the written scenario adds to m_t.
    factor_mode : xarray.DataArray
        Dims (month, factor): the factor path at the mode of the event's law along the
        direction of ``innovation_mean`` (the most likely way the event happens; for a
        sharp event the boundary point nearest the centre, where the mean lies beyond it).
    mode_distance, mode_distance_se : float
        Its distance from the centre in innovation standard deviations (bootstrap s.e.).
    distance : float
        Mahalanobis distance of ``innovation_mean`` under the model (innovations are
        standardised, so its Euclidean length, less its estimation noise).
    distance_probability : float
        P(chi2 with (T + 1) K degrees of freedom >= distance^2): the share of the model's
        innovation paths farther from the centre (Breuer et al. 2009's plausibility).
    direction_probability : float
        Phi(-distance): the probability of a path at least that far along the scenario's
        own direction (the one-dimensional measure of a mean shift).
    conditional_loss, conditional_loss_ci : float, (float, float)
        E[horizon gross loss | event], CNY.
    drivers : pandas.DataFrame
        One row per industry and region (index ``(kind, name)``): ``share`` of the gross
        loss in the event with ``share_se``, the unconditional ``base_share`` and
        ``lift`` = share / base_share; sorted by kind, then share.
    scenario : Scenario
        The base scenario with ``[factors.innovation_mean]`` = its own mean plus
        ``innovation_mean``: the event's average factor path with the model's noise around it.
    reproduction, reproduction_ci, reproduction_paths : float, (float, float), int
        Share of the paths of ``scenario`` in which the event happens, counted in a plain
        run of ``reproduction_paths`` paths on draws of their own (NaN and 0 when no such
        run was asked for).
    n_paths, seed : int
        Importance-sampled paths of the main run and its seed.
    ci : float
        Coverage of the intervals.
    """

    event: Event
    probability: float
    probability_ci: tuple[float, float]
    probability_se: float
    event_paths: int
    effective_event_paths: float
    factor_mean: xr.DataArray
    factor_mean_se: xr.DataArray
    innovation_mean: xr.DataArray
    innovation_mean_se: xr.DataArray
    factor_mode: xr.DataArray
    mode_distance: float
    mode_distance_se: float
    distance: float
    distance_probability: float
    direction_probability: float
    conditional_loss: float
    conditional_loss_ci: tuple[float, float]
    drivers: pd.DataFrame
    scenario: Scenario
    reproduction: float
    reproduction_ci: tuple[float, float]
    reproduction_paths: int
    n_paths: int
    seed: int
    ci: float

    def factor_mean_ci(self) -> tuple[xr.DataArray, xr.DataArray]:
        """Lower and upper bounds of ``factor_mean``, dims (month, factor)."""
        half = self.z * self.factor_mean_se
        return self.factor_mean - half, self.factor_mean + half

    @property
    def z(self) -> float:
        """The normal quantile of the intervals' coverage."""
        return float(ndtri(0.5 + 0.5 * self.ci))

    def header(self) -> list[str]:
        """What the test found, one statement a line (the comment block of :meth:`to_toml`)."""
        lo, hi = self.probability_ci
        r_lo, r_hi = self.reproduction_ci
        top = self.drivers.groupby(level="kind", sort=False).head(2)
        lines = [
            (f"Reverse stress test of scenario '{self.scenario.name.removesuffix('_reverse')}' for the event "
            f"'{self.event.text}' ({self.event.describe()})"),
            (f"P(event) = {self.probability:.4g} [{lo:.4g}, {hi:.4g}] ({self.ci:.0%} interval), "
            f"{self.event_paths:,} event paths of {self.n_paths:,} importance-sampled paths (seed {self.seed}; worth "
            f"{self.effective_event_paths:,.0f} plain event paths)"),
            (f"E[gross loss | event] = {self.conditional_loss:.6g} CNY [{self.conditional_loss_ci[0]:.6g}, "
            f"{self.conditional_loss_ci[1]:.6g}]"),
            (f"Mahalanobis distance of the mean innovation path {self.distance:.3g} (a model path is farther with "
            f"probability {self.distance_probability:.3g}; along this direction {self.direction_probability:.3g}); "
            f"of the mode {self.mode_distance:.3g}"),
        ]
        if self.reproduction_paths:
            lines.append(f"Running this scenario shows the event in {self.reproduction:.1%} [{r_lo:.1%}, {r_hi:.1%}] "
                         f"of its paths (counted in a plain run of {self.reproduction_paths:,} paths)")
        lines.append("Drivers (share of the gross loss in the event; unconditional share): " + "; ".join(
            f"{kind} {name} {row.share:.1%} ({row.base_share:.1%})" for (kind, name), row in top.iterrows()))
        return lines

    def to_toml(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`scenario` to ``path`` atomically, with :meth:`header` as its comment.

        The file is standalone (every key resolved, no ``extends``; the calibration
        reference of the base written out), so it can be moved anywhere and loaded with
        :func:`stresslab.load_scenario`.
        """
        text = "".join(f"# {line}\n" for line in self.header()) + "\n" + scenario_toml(self.scenario)
        write_atomically(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
