"""Calibration from a lender's loan tape: estimates with intervals -> a fitted scenario.

transitions: cohort month-pair counts (roll, cure, miss, prepayment rates); pd: the
pd_horizon_months default rate of current loans, observed and implied by the fitted chain;
correlation: the Vasicek asset correlation of a default-rate series; fit: calibrate().
"""

from stresslab.calibrate.correlation import AssetCorrelationFit, fit_asset_correlation
from stresslab.calibrate.fit import Calibration, calibrate
from stresslab.calibrate.pd import implied_pd, observed_pd
from stresslab.calibrate.transitions import fit_transitions

__all__ = ["AssetCorrelationFit", "Calibration", "calibrate", "fit_asset_correlation", "fit_transitions", "implied_pd",
           "observed_pd"]
