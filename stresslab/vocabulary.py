"""Names shared by every stage: borrower types, amortisation kinds, delinquency states, IFRS 9 stages."""

from __future__ import annotations

__all__ = ["AMORTIZATIONS", "BORROWER_TYPES", "DPD30_STATES", "LIVE_STATES", "STAGES", "STAGE_OF_STATE", "STATES"]

BORROWER_TYPES = ("enterprise", "individual")
AMORTIZATIONS = ("annuity", "equal_principal", "interest_only", "bullet")
LIVE_STATES = ("C", "M1", "M2", "M3")  # a book's loans start in one of these
STATES = (*LIVE_STATES, "D", "P")  # the state dimension of results (index = kernel state code)
DPD30_STATES = ("M2", "M3")  # 31-90 days past due: the DPD30+ ratio's numerator over LIVE_STATES
# IFRS 9 (docs/ifrs9.md): at most 30 days past due S1, 31-90 days S2 (§5.5.11), defaulted S3 (B5.5.37)
STAGES = ("S1", "S2", "S3")
STAGE_OF_STATE = {"C": 1, "M1": 1, "M2": 2, "M3": 2, "D": 3}
