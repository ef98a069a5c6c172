"""Calibration from a lender's loan tape: estimates with intervals -> a fitted scenario.

transitions: cohort month-pair counts (roll, cure, miss, prepayment rates); pd: the
pd_horizon_months default rate of current loans, observed and implied by the fitted chain.
"""

from stresslab.calibrate.pd import implied_pd, observed_pd
from stresslab.calibrate.transitions import fit_transitions

__all__ = ["fit_transitions", "implied_pd", "observed_pd"]
