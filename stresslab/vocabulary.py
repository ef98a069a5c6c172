"""Names shared by every stage: borrower types, amortisation kinds, delinquency states."""

from __future__ import annotations

__all__ = ["AMORTIZATIONS", "BORROWER_TYPES", "DPD30_STATES", "LIVE_STATES", "STATES"]

BORROWER_TYPES = ("enterprise", "individual")
AMORTIZATIONS = ("annuity", "equal_principal", "interest_only", "bullet")
LIVE_STATES = ("C", "M1", "M2", "M3")  # a book's loans start in one of these
STATES = (*LIVE_STATES, "D", "P")  # the state dimension of results (index = kernel state code)
DPD30_STATES = ("M2", "M3")  # 31-90 days past due: the DPD30+ ratio's numerator over LIVE_STATES
