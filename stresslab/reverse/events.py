"""Events of a reverse stress test as short strings, and their per-path evaluation.

``"loss > 2.5e8"`` (horizon gross loss, CNY), ``"net_loss > X"`` (the lender's retained
loss), ``"loss_12m > X"`` (gross loss of months 1-12), ``"exhausted:fund"`` or
``"exhausted:fund@12"`` (the layer named ``fund`` has no capacity left at the end of some
month, by month 12), ``"dpd30 > 0.15"`` (the DPD30+ ratio by balance above 0.15 in some
month) and ``"capital_ratio < 0.08"`` (needs the capital model, not built yet). The same
strings in Python and on the command line; docs/reverse_stress.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from stresslab._kernels.arrays import Outputs
from stresslab.compile.model import CompiledModel
from stresslab.errors import StresslabError, did_you_mean
from stresslab.metrics.summary import LIVE_FLOOR
from stresslab.vocabulary import DPD30_STATES, LIVE_STATES, STATES

__all__ = ["EVENT_FORMS", "Event", "parse_event"]

EVENT_FORMS = (
    "'loss > X' (horizon gross loss, CNY)",
    "'net_loss > X' (the lender's retained loss)",
    "'loss_12m > X' (gross loss of months 1-12)",
    "'exhausted:LAYER' or 'exhausted:LAYER@M' (the layer's capacity used up, by month M)",
    "'dpd30 > Y' (DPD30+ ratio by balance above Y in some month)",
    "'capital_ratio < R' (needs the capital model)",
)
_ABOVE = {"loss": "horizon gross loss", "net_loss": "horizon net loss", "loss_12m": "gross loss of months 1-12",
          "dpd30": "DPD30+ ratio in some month"}
_NUMBER = r"[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^\s*(?P<metric>[A-Za-z_0-9]+)\s*(?P<op><|>)\s*(?P<value>{_NUMBER})\s*$")
_EXHAUSTED = re.compile(r"^\s*exhausted\s*:\s*(?P<layer>[^@]*?)\s*(?:@\s*(?P<month>\d+))?\s*$")
_TIGHT = 1e-9  # a loss event within this relative distance of its bound counts as impossible


@dataclass(frozen=True, kw_only=True)
class Event:
    """A failure event of a reverse stress test, parsed from its string.

    Attributes
    ----------
    text : str
        As given.
    kind : {"loss", "net_loss", "loss_12m", "exhausted", "dpd30", "capital_ratio"}
    threshold : float
        X, Y or R of the string (1.0 for ``exhausted``: the used share of the capacity).
    layer : str
        The layer of ``exhausted`` ("" otherwise).
    month : int or None
        ``exhausted:LAYER@M``: by month M (None: by the horizon end).

    Notes
    -----
    Each event is ``score >= threshold`` for a per-path score (:meth:`score`): the loss
    itself, the DPD30+ ratio's maximum over months, or the largest used share of the
    layer's capacity, 1 - left / capacity, over months 1..M. ``>`` and ``>=`` differ only
    on ties, which have probability 0 for the continuous losses.
    """

    text: str
    kind: str
    threshold: float
    layer: str = ""
    month: int | None = None

    def describe(self) -> str:
        """The event in words, e.g. ``horizon gross loss > 2.5e+08 CNY``."""
        if self.kind == "exhausted":
            return f"layer '{self.layer}' exhausted" + (f" by month {self.month}" if self.month else "")
        if self.kind == "capital_ratio":
            return f"capital ratio < {self.threshold:g}"
        units = "" if self.kind == "dpd30" else " CNY"
        return f"{_ABOVE[self.kind]} > {self.threshold:.6g}{units}"

    def measure(self) -> str:
        """What :meth:`score` measures, in words."""
        if self.kind == "exhausted":
            return f"used share of layer '{self.layer}''s capacity"
        return {"capital_ratio": "capital ratio", "dpd30": "peak DPD30+ ratio"}.get(self.kind, _ABOVE[self.kind])

    def check(self, model: CompiledModel) -> None:
        """Refuse an event this model cannot evaluate or that has probability 0, in one line.

        Raises
        ------
        StresslabError
            For ``capital_ratio`` (no capital model yet), an unknown layer, a month beyond
            the horizon, ``loss_12m`` on a horizon under 12 months, and events no path can
            reach: a loss above the largest loss the book can make (every loan defaulting
            at its largest exposure, nothing recovered), a DPD30+ ratio of 1 or more, an
            unlimited layer or one whose capacity exceeds that largest loss.
        """
        where = f"event {self.text!r}"
        if self.kind == "capital_ratio":
            raise StresslabError(f"{where} needs the capital model (P&L, capital and risk-weighted assets per path and "
                                 f"month: issue 19 part 1), which is not built yet; events available now: "
                                 f"{', '.join(EVENT_FORMS[:-1])}")
        if self.kind == "loss_12m" and model.n_months < 12:
            raise StresslabError(f"{where} needs a horizon of at least 12 months; the scenario has {model.n_months}")
        bound = largest_loss(model, 12 if self.kind == "loss_12m" else model.n_months)
        if self.kind in ("loss", "net_loss", "loss_12m") and self.threshold >= bound * (1.0 - _TIGHT):
            raise StresslabError(
                f"{where} has probability 0: the {_ABOVE[self.kind]} can never exceed {bound:.6g} CNY (every loan "
                f"defaulting at its largest possible exposure, nothing recovered); choose X below that")
        if self.kind == "dpd30" and self.threshold >= 1.0:
            raise StresslabError(f"{where} has probability 0: a DPD30+ ratio is at most 1; choose Y in [0, 1)")
        if self.kind == "exhausted":
            self._check_layer(model, where, bound)

    def _check_layer(self, model: CompiledModel, where: str, bound: float) -> None:
        names = list(model.layer_names)
        if self.layer not in names:
            have = f"the scenario's layers: {', '.join(map(repr, names))}" if names else "the scenario has no [[layers]]"
            raise StresslabError(f"{where}: no layer named {self.layer!r}{did_you_mean(self.layer, names)}; {have}")
        if self.month is not None and not 1 <= self.month <= model.n_months:
            raise StresslabError(f"{where}: month {self.month} is outside the horizon 1..{model.n_months}")
        capacity = float(model.layers.capacity[names.index(self.layer)])
        if not math.isfinite(capacity) or capacity >= bound:
            size = "unlimited" if not math.isfinite(capacity) else f"{capacity:.6g} CNY"
            raise StresslabError(f"{where} has probability 0: the layer's capacity ({size}) is more than the book "
                                 f"can ever lose ({bound:.6g} CNY), so it is never used up")

    def score(self, out: Outputs, model: CompiledModel) -> np.ndarray:
        """How far each path went toward the event; the event is ``score >= threshold``.

        Parameters
        ----------
        out : Outputs
            Kernel outputs of the paths.
        model : CompiledModel
            The model they were simulated with (layer names, starting exposure).

        Returns
        -------
        ndarray of shape (n_paths,)
            CNY for the losses; the DPD30+ ratio; the used share of the layer's capacity.
        """
        if self.kind == "loss":
            return out.loss_gross.sum(axis=1)
        if self.kind == "net_loss":
            return out.loss_net.sum(axis=1)
        if self.kind == "loss_12m":
            return out.loss_gross[:, :12].sum(axis=1)
        if self.kind == "dpd30":
            return peak_dpd30(out.balance_by_state, float(model.loans.principal.sum()
                                                          + model.loans.arrears_principal.sum()))
        k = list(model.layer_names).index(self.layer)
        capacity = float(model.layers.capacity[k])
        left = out.layer_capacity_left[:, : self.month or model.n_months, k]
        if capacity <= 0.0:
            return np.ones(left.shape[0])
        return np.clip(1.0 - left.min(axis=1) / capacity, 0.0, 1.0)

    def occurred(self, score: np.ndarray) -> np.ndarray:
        """1.0 where the event happened, else 0.0 (``score > threshold``; exhaustion: no capacity left)."""
        hit = score >= self.threshold if self.kind == "exhausted" else score > self.threshold
        return hit.astype(np.float64)


def parse_event(text: str) -> Event:
    """Parse an event string (the forms of :data:`EVENT_FORMS`).

    Parameters
    ----------
    text : str
        E.g. ``"loss > 2.5e8"``, ``"exhausted:fund@12"``, ``"dpd30 > 0.15"``.

    Returns
    -------
    Event

    Raises
    ------
    StresslabError
        One line naming the allowed forms, for anything else (a metric that is not known,
        the wrong comparison, a number that is not finite, a layer without a name).
    """
    if not isinstance(text, str):
        raise StresslabError(f"an event must be a string such as 'loss > 2.5e8'; got {text!r}")
    allowed = f"allowed: {'; '.join(EVENT_FORMS)}"
    match = _EXHAUSTED.match(text)
    if match is not None:
        layer, month = match["layer"], match["month"]
        if not layer:
            raise StresslabError(f"event {text!r} names no layer; {allowed}")
        return Event(text=text, kind="exhausted", threshold=1.0, layer=layer, month=None if month is None else int(month))
    match = _COMPARISON.match(text)
    if match is None:
        raise StresslabError(f"event {text!r} is not understood; {allowed}")
    metric, op, value = match["metric"], match["op"], float(match["value"])
    wanted = "<" if metric == "capital_ratio" else ">"
    if metric not in (*_ABOVE, "capital_ratio"):
        raise StresslabError(f"event {text!r}: unknown quantity {metric!r}"
                             f"{did_you_mean(metric, (*_ABOVE, 'capital_ratio', 'exhausted'))}; {allowed}")
    if op != wanted:
        raise StresslabError(f"event {text!r}: {metric} takes '{wanted}' (a failure is {metric} {wanted} a value); {allowed}")
    if not math.isfinite(value):
        raise StresslabError(f"event {text!r}: the value must be a finite number; {allowed}")
    return Event(text=text, kind=metric, threshold=value)


def largest_loss(model: CompiledModel, months: int) -> float:
    """An upper bound of the gross loss of the first ``months`` months in any path, CNY.

    Every loan defaulting at the largest exposure it can reach: its principal and arrears,
    with interest accruing (and, in a deferral, capitalised) at its rate every month,
    ``(principal + arrears) (1 + rate)^months``, and nothing recovered.
    """
    loans = model.loans
    owed = loans.principal + loans.arrears_principal + loans.arrears_interest
    return float(np.sum(owed * (1.0 + loans.rate) ** months))


def peak_dpd30(balance_by_state: np.ndarray, exposure: float) -> np.ndarray:
    """Largest DPD30+ ratio by balance of each path over the months with a live book.

    Parameters
    ----------
    balance_by_state : ndarray of shape (n_paths, n_months, 6)
    exposure : float
        The book's exposure at the start, CNY.

    Returns
    -------
    ndarray of shape (n_paths,)
        max_t (M2 + M3) / (C + M1 + M2 + M3) over the months whose live balance is at least
        ``LIVE_FLOOR`` (1%) of ``exposure`` (the summary's rule: a run-off book's last few
        loans would make any ratio); 0 when there is none.
    """
    column = {state: i for i, state in enumerate(STATES)}
    live = sum(balance_by_state[:, :, column[s]] for s in LIVE_STATES)
    late = sum(balance_by_state[:, :, column[s]] for s in DPD30_STATES)
    ratio = np.divide(late, live, out=np.zeros_like(live), where=live >= LIVE_FLOOR * exposure)
    return ratio.max(axis=1)
