"""Reverse stress tests: the probability of a named failure and the factor paths that lead to it.

``reverse_stress(portfolio, scenario, "loss > 2.5e8")`` (docs/reverse_stress.md): events
(:mod:`stresslab.reverse.events`), estimators (:mod:`stresslab.reverse.estimates`), the
run (:mod:`stresslab.reverse.stress`) and its result (:mod:`stresslab.reverse.result`).
"""

from stresslab.reverse.events import Event, parse_event
from stresslab.reverse.result import ReverseStress
from stresslab.reverse.stress import reverse_stress

__all__ = ["Event", "ReverseStress", "parse_event", "reverse_stress"]
