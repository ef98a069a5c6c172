"""A synthetic book of online micro-loans for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from stresslab._memory import available_memory
from stresslab.book.portfolio import Portfolio
from stresslab.errors import PortfolioError
from stresslab.vocabulary import AMORTIZATIONS, LIVE_STATES

__all__ = ["synthetic_portfolio"]


_SYNTHETIC_BYTES_PER_LOAN = 1_200  # peak memory of synthetic_portfolio (measured: ~1 KB a loan)


# Assumptions of ours (not data): name -> (share of borrowers, PD multiplier).
_INDUSTRIES = {
    "agriculture": (0.06, 1.10),
    "catering": (0.18, 1.40),
    "construction": (0.06, 1.15),
    "manufacturing": (0.10, 0.90),
    "retail": (0.26, 1.25),
    "services": (0.20, 1.00),
    "transport": (0.08, 1.00),
    "wholesale": (0.06, 0.85),
}


_REGIONS = {
    "central": 0.14, "east": 0.28, "north": 0.14, "northeast": 0.06,
    "northwest": 0.06, "south": 0.20, "southwest": 0.12,
}  # fmt: skip


# Single-borrower balance caps of the 2020 CBIRC/PBoC draft online micro-loan measures (CNY).
_BORROWER_CAP = {"individual": 300_000.0, "enterprise": 1_000_000.0}


_MIN_BALANCE = 1_000.0


_TERMS = np.array([3, 6, 12, 24, 36])


_TERM_PROBS = {"individual": [0.10, 0.20, 0.40, 0.20, 0.10], "enterprise": [0.05, 0.15, 0.35, 0.25, 0.20]}


_PD_RANGE = (0.005, 0.15)


_RATE_RANGE = (0.07, 0.24)


def synthetic_portfolio(n_loans: int, seed: int = 0) -> Portfolio:
    """A realistic, deterministic book of online micro-loans to small businesses (CNY).

    Parameters
    ----------
    n_loans : int
        Number of loans, >= 1.
    seed : int
        Seed of the numpy Generator; the same (n_loans, seed) gives the same book.

    Returns
    -------
    Portfolio
        Validated like a loaded book; ``source`` is ``"<synthetic n=..., seed=...>"``.

    Notes
    -----
    Borrowers hold 1 (75 %), 2 (18 %) or 3 (7 %) adjacent loans sharing borrower id,
    type, industry, region, DSCR and revenue. Figures are our assumptions except the caps:

    - type: individual (sole proprietor) 70 %, enterprise 30 %;
    - industry shares: retail 26 %, services 20 %, catering 18 %, manufacturing 10 %,
      transport 8 %, agriculture, construction and wholesale 6 % each; 7 regions
      (east 28 %, south 20 %, central, north 14 %, southwest 12 %, northeast, northwest 6 %);
    - pd (12-month): log-normal, median about 3 %, industry multipliers 0.85 (wholesale)
      to 1.4 (catering), 0.85 for enterprises, clipped to [0.5 %, 15 %];
    - balance: log-normal, median 30k (individuals, sigma 0.8) and 150k (enterprises,
      sigma 0.9), at least 1,000 and at most cap / (number of the borrower's loans), so a
      borrower's total stays within the single-borrower caps of the 2020 CBIRC/PBoC draft
      Interim Measures for the Administration of Online Microloan Business: 300,000 CNY
      for individuals, 1,000,000 CNY for enterprises;
    - terms: original 3, 6, 12, 24 or 36 months, uniformly elapsed, so remaining_term is
      in 1..36; amortization annuity 57 %, equal principal 31 %, interest-only 12 %;
      10 % of loans with original term <= 6 months are bullet loans;
    - annual_rate: 7 % to 24 %, rising with log pd, plus noise of 1 point;
    - state: C about 90 %, M1 5 %, M2 3 %, M3 2 %, in proportion to pd (bullet loans C);
    - pledge_value (receivables) on 15 % of enterprise loans, 0.3-1.0 x balance;
    - dscr for half the borrowers, 1.1-3.0, lower for riskier borrowers; revenue_monthly
      for enterprises, about 0.4 x their total balance (log-normal, sigma 0.5);
      recovery_mean not given (NaN).
    """
    if isinstance(n_loans, bool) or not isinstance(n_loans, int | np.integer) or n_loans < 1:
        raise PortfolioError(f"synthetic_portfolio: n_loans must be an integer >= 1; got {n_loans!r}")
    n = int(n_loans)
    room = 0.9 * available_memory()
    if n * _SYNTHETIC_BYTES_PER_LOAN > room:
        raise PortfolioError(
            f"synthetic_portfolio: {n:,} loans need about {n * _SYNTHETIC_BYTES_PER_LOAN / 2**30:,.1f} GiB of memory; "
            f"about {int(room // _SYNTHETIC_BYTES_PER_LOAN):,} loans fit in what is available"
        )
    rng = np.random.default_rng(seed)

    # Borrowers and their attributes; owner[j] is the borrower of loan j.
    per_borrower = rng.choice([1, 2, 3], size=n, p=[0.75, 0.18, 0.07])
    n_borrowers = int(np.searchsorted(np.cumsum(per_borrower), n)) + 1
    owner = np.repeat(np.arange(n_borrowers), per_borrower[:n_borrowers])[:n]
    n_loans_of_owner = np.bincount(owner)[owner]
    enterprise_b = rng.random(n_borrowers) < 0.30
    industry_b = rng.choice(len(_INDUSTRIES), size=n_borrowers, p=[w for w, _ in _INDUSTRIES.values()])
    region_b = rng.choice(len(_REGIONS), size=n_borrowers, p=list(_REGIONS.values()))
    risk_b = rng.standard_normal(n_borrowers)  # borrower credit quality, higher = riskier
    enterprise = enterprise_b[owner]

    industry_factor = np.array([factor for _, factor in _INDUSTRIES.values()])[industry_b[owner]]
    pd_factor = industry_factor * np.where(enterprise, 0.85, 1.0)
    log_pd = np.log(0.028 * pd_factor) + 0.75 * risk_b[owner] + 0.25 * rng.standard_normal(n)
    pd = np.round(np.clip(np.exp(log_pd), *_PD_RANGE), 4)
    riskiness = np.log(pd / _PD_RANGE[0]) / np.log(_PD_RANGE[1] / _PD_RANGE[0])  # 0..1
    rate = 0.07 + 0.17 * riskiness + 0.01 * rng.standard_normal(n)
    annual_rate = np.round(np.clip(rate, *_RATE_RANGE), 4)

    median = np.where(enterprise, 150_000.0, 30_000.0)
    sigma = np.where(enterprise, 0.9, 0.8)
    cap = np.where(enterprise, _BORROWER_CAP["enterprise"], _BORROWER_CAP["individual"]) / n_loans_of_owner
    balance = np.round(np.clip(median * np.exp(sigma * rng.standard_normal(n)), _MIN_BALANCE, cap), 2)

    original = np.where(
        enterprise,
        rng.choice(_TERMS, size=n, p=_TERM_PROBS["enterprise"]),
        rng.choice(_TERMS, size=n, p=_TERM_PROBS["individual"]),
    )
    remaining_term = original - rng.integers(0, original)
    bullet = (original <= 6) & (rng.random(n) < 0.10)
    amortization = np.where(bullet, 3, rng.choice(3, size=n, p=[0.57, 0.31, 0.12]))

    weight = pd / pd.mean()
    u = rng.random(n)
    state = np.select([u < 0.02 * weight, u < 0.05 * weight, u < 0.10 * weight], [3, 2, 1], default=0)
    state[bullet] = 0  # a bullet loan has no installment due before maturity

    pledged = enterprise & (rng.random(n) < 0.15)
    pledge_value = np.where(pledged, np.round(balance * rng.uniform(0.3, 1.0, n), 2), 0.0)
    dscr_b = np.clip(3.0 - 1.9 * ndtr(risk_b) + 0.2 * rng.standard_normal(n_borrowers), 1.1, 3.0)
    dscr = np.where((rng.random(n_borrowers) < 0.5)[owner], np.round(dscr_b[owner], 2), np.nan)
    total_balance = np.bincount(owner, weights=balance)[owner]
    revenue_b = 0.4 * np.exp(0.5 * rng.standard_normal(n_borrowers))
    revenue_monthly = np.where(enterprise, np.round(total_balance * revenue_b[owner], 2), np.nan)

    borrower_ids = np.array([f"B{b:06d}" for b in range(1, n_borrowers + 1)])
    return Portfolio(
        loan_id=np.array([f"L{j:07d}" for j in range(1, n + 1)]),
        borrower_id=borrower_ids[owner],
        borrower_type=np.where(enterprise, "enterprise", "individual"),
        industry=np.array(list(_INDUSTRIES))[industry_b[owner]],
        region=np.array(list(_REGIONS))[region_b[owner]],
        balance=balance,
        annual_rate=annual_rate,
        remaining_term=remaining_term,
        amortization=np.array(AMORTIZATIONS)[amortization],
        pd=pd,
        state=np.array(LIVE_STATES)[state],
        pledge_value=pledge_value,
        dscr=dscr,
        recovery_mean=np.full(n, np.nan),
        revenue_monthly=revenue_monthly,
        source=f"<synthetic n={n}, seed={seed}>",
    )
