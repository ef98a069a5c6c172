"""Basel IRB capital of a loan book: the regulatory reference beside the simulated capital.

MODEL.md §8 asks for "the Basel IRB capital of the same book as a regulatory reference".
This module implements the Basel II internal ratings-based (IRB) risk-weight functions of
BCBS, *International Convergence of Capital Measurement and Capital Standards: A Revised
Framework, Comprehensive Version* (June 2006), cited below as "Basel II" with paragraph
numbers:

- corporate exposures, paragraph 272, with the firm-size (SME) adjustment of paragraph 273;
- retail exposures, paragraphs 328 (residential mortgages), 329 (qualifying revolving
  retail) and 330 (other retail).

:func:`irb_capital` classifies each loan of a :class:`~stresslab.book.portfolio.Portfolio` and
returns its capital requirement K, risk-weighted assets and capital; :func:`irb_reference`
sets the IRB total beside the simulated capital VaR - EL of a run. docs/regulatory.md
states the formulas, the classification rules and the assumptions.

Notation: PD and LGD are decimals, EAD is currency, M is in years, Φ is the standard normal
distribution function and Φ⁻¹ its inverse (Basel's N and G).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci, var_ci, var_es
from stresslab.run.schema import require_variables

__all__ = [
    "CNY_PER_EUR",
    "DEFAULT_EUR_PER_CNY",
    "DEFAULT_RETAIL_THRESHOLD_EUR",
    "IRB_CONFIDENCE",
    "PD_FLOOR",
    "ASSET_CLASSES",
    "corporate_correlation",
    "sme_adjustment",
    "other_retail_correlation",
    "maturity_b",
    "corporate_k",
    "residential_mortgage_k",
    "qualifying_revolving_k",
    "other_retail_k",
    "irb_capital",
    "irb_reference",
]

#: Confidence level of the IRB risk-weight functions (the G(0.999) of paragraphs 272, 328-330).
IRB_CONFIDENCE = 0.999
#: PD floor of Basel II: 0.03 % for corporate (paragraph 285) and retail (paragraph 331) exposures.
PD_FLOOR = 0.0003
#: CNY per EUR used by default: the CFETS central parity rate of the yuan announced on
#: 31 December 2024 (100 EUR = 752.57 CNY, as reported by Xinhua/MENAFN that day). A dated
#: reference value, not a live rate: pass ``eur_per_cny`` to use another.
CNY_PER_EUR = 7.5257
#: EUR per CNY by default, 1 / :data:`CNY_PER_EUR`.
DEFAULT_EUR_PER_CNY = 1.0 / CNY_PER_EUR
#: Retail threshold of paragraph 231: total exposure to one small-business borrower, EUR.
DEFAULT_RETAIL_THRESHOLD_EUR = 1_000_000.0
#: Asset classes assigned by :func:`irb_capital`.
ASSET_CLASSES = ("other_retail", "corporate_sme", "corporate")

_G999 = float(ndtri(IRB_CONFIDENCE))


# ----------------------------------------------------------------------------- checks
def _array(name: str, x: ArrayLike, lo: float, hi: float) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(a) | (a < lo) | (a > hi)
    if np.any(bad):
        first = a[bad].flat[0]
        raise StresslabError(f"{name} must be finite and in [{lo:g}, {hi:g}]; got {first!r} ({np.count_nonzero(bad)} bad value(s))")
    return a


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def _vasicek_k(pd: np.ndarray, lgd: np.ndarray, r: np.ndarray) -> np.ndarray:
    """LGD Φ((Φ⁻¹(PD) + √R Φ⁻¹(0.999)) / √(1 - R)) - PD LGD, exactly 0 at PD = 0 and at PD = 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = ndtr((ndtri(pd) + np.sqrt(r) * _G999) / np.sqrt(1.0 - r))
    k = lgd * conditional - pd * lgd
    return np.where((pd <= 0.0) | (pd >= 1.0), 0.0, k)


# ----------------------------------------------------------------------------- formulas
def corporate_correlation(pd: ArrayLike, sales_eur_m: ArrayLike | None = None) -> float | np.ndarray:
    """Asset correlation R of corporate exposures, Basel II paragraphs 272-273.

    Parameters
    ----------
    pd : array_like
        Probability of default (after any floor), in [0, 1].
    sales_eur_m : array_like, optional
        Annual sales S of the borrower's consolidated group, millions of EUR; NaN (or None)
        where unknown: no firm-size adjustment then.

    Returns
    -------
    float or ndarray
        :math:`R = 0.12\\,f + 0.24\\,(1 - f)` with :math:`f = (1 - e^{-50 PD}) / (1 - e^{-50})`
        (paragraph 272), plus :func:`sme_adjustment` (paragraph 273), which is
        :math:`-0.04\\,(1 - (S - 5)/45)` for S < 50 (S below 5 counts as 5) and 0 for S >= 50.
        Without the adjustment R runs from 0.24 (PD = 0) down to 0.12 (PD = 1).
    """
    pd = _array("pd", pd, 0.0, 1.0)
    f = -np.expm1(-50.0 * pd) / -np.expm1(-50.0)
    r = 0.12 * f + 0.24 * (1.0 - f)
    if sales_eur_m is not None:
        r = r + sme_adjustment(sales_eur_m)
    return _out(r)


def sme_adjustment(sales_eur_m: ArrayLike) -> float | np.ndarray:
    """Firm-size adjustment of the corporate correlation, Basel II paragraph 273.

    Parameters
    ----------
    sales_eur_m : array_like
        Annual sales S, millions of EUR, >= 0; NaN where unknown.

    Returns
    -------
    float or ndarray
        :math:`-0.04\\,(1 - (\\min(\\max(S, 5), 50) - 5) / 45)`: -0.04 for S <= 5, rising
        linearly to 0 at S = 50, and 0 for S >= 50 (no SME) or S unknown (NaN).
    """
    s = np.asarray(sales_eur_m, dtype=np.float64)
    if np.any(s[~np.isnan(s)] < 0) or np.any(np.isinf(s)):
        raise StresslabError("sales_eur_m must be >= 0 and finite (NaN = unknown)")
    adj = -0.04 * (1.0 - (np.clip(s, 5.0, 50.0) - 5.0) / 45.0)
    return _out(np.where(np.isnan(s), 0.0, adj))


def other_retail_correlation(pd: ArrayLike) -> float | np.ndarray:
    """Asset correlation R of other retail exposures, Basel II paragraph 330.

    :math:`R = 0.03\\,f + 0.16\\,(1 - f)`, :math:`f = (1 - e^{-35 PD}) / (1 - e^{-35})`:
    0.16 at PD = 0 falling to 0.03 at PD = 1.
    """
    pd = _array("pd", pd, 0.0, 1.0)
    f = -np.expm1(-35.0 * pd) / -np.expm1(-35.0)
    return _out(0.03 * f + 0.16 * (1.0 - f))


def maturity_b(pd: ArrayLike) -> float | np.ndarray:
    """Maturity-adjustment slope b = (0.11852 - 0.05478 ln PD)², Basel II paragraph 272 (PD > 0)."""
    pd = _array("pd", pd, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return _out((0.11852 - 0.05478 * np.log(pd)) ** 2)


def corporate_k(
    pd: ArrayLike, lgd: ArrayLike = 0.45, maturity: ArrayLike = 2.5, sales_eur_m: ArrayLike | None = None
) -> float | np.ndarray:
    """Capital requirement K of a non-defaulted corporate exposure, Basel II paragraphs 272-273.

    Parameters
    ----------
    pd : array_like
        PD in [0, 1]; apply the floor (:data:`PD_FLOOR`, paragraph 285) before calling.
    lgd : array_like, default 0.45
        LGD in [0, 1] (0.45: senior unsecured claims under the foundation approach, paragraph 287).
    maturity : array_like, default 2.5
        Effective maturity M in years (paragraph 318: 2.5 under the foundation approach;
        paragraph 320: between 1 and 5 years). Not clamped here.
    sales_eur_m : array_like, optional
        Annual sales, millions of EUR, for the SME adjustment (paragraph 273); NaN = unknown.

    Returns
    -------
    float or ndarray
        .. math:: K = \\Big[LGD\\,Φ\\Big(\\frac{Φ^{-1}(PD) + \\sqrt R\\,Φ^{-1}(0.999)}{\\sqrt{1-R}}\\Big)
                  - PD\\,LGD\\Big]\\,\\frac{1 + (M - 2.5)\\,b}{1 - 1.5\\,b}

        with R from :func:`corporate_correlation` and b from :func:`maturity_b`. The risk
        weight is 12.5 K and RWA = 12.5 K EAD. K = 0 at PD = 0 (the limit) and at PD = 1
        (a defaulted exposure's K, max(0, LGD - best-estimate EL), is outside this formula).
        The maturity factor needs 1.5 b < 1, i.e. PD > 2.9e-6: far below the 0.03 % floor,
        but do not feed unfloored PDs of that size.
    """
    pd = _array("pd", pd, 0.0, 1.0)
    lgd = _array("lgd", lgd, 0.0, 1.0)
    m = _array("maturity", maturity, 0.0, np.inf)
    r = np.asarray(corporate_correlation(pd, sales_eur_m))
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (0.11852 - 0.05478 * np.log(pd)) ** 2
        k = _vasicek_k(pd, lgd, r) * (1.0 + (m - 2.5) * b) / (1.0 - 1.5 * b)
    return _out(np.where(pd <= 0.0, 0.0, k))


def residential_mortgage_k(pd: ArrayLike, lgd: ArrayLike) -> float | np.ndarray:
    """K of a residential mortgage exposure, Basel II paragraph 328: R = 0.15, no maturity adjustment."""
    pd, lgd = _array("pd", pd, 0.0, 1.0), _array("lgd", lgd, 0.0, 1.0)
    return _out(_vasicek_k(pd, lgd, np.float64(0.15)))


def qualifying_revolving_k(pd: ArrayLike, lgd: ArrayLike) -> float | np.ndarray:
    """K of a qualifying revolving retail exposure, Basel II paragraph 329: R = 0.04, no maturity adjustment."""
    pd, lgd = _array("pd", pd, 0.0, 1.0), _array("lgd", lgd, 0.0, 1.0)
    return _out(_vasicek_k(pd, lgd, np.float64(0.04)))


def other_retail_k(pd: ArrayLike, lgd: ArrayLike = 0.45) -> float | np.ndarray:
    """K of an other retail exposure, Basel II paragraph 330.

    :math:`K = LGD\\,Φ\\big((Φ^{-1}(PD) + \\sqrt R\\,Φ^{-1}(0.999)) / \\sqrt{1-R}\\big) - PD\\,LGD`
    with R from :func:`other_retail_correlation`; retail K has no maturity adjustment
    (paragraph 327). Apply the PD floor (paragraph 331) before calling.
    """
    pd, lgd = _array("pd", pd, 0.0, 1.0), _array("lgd", lgd, 0.0, 1.0)
    return _out(_vasicek_k(pd, lgd, np.asarray(other_retail_correlation(pd))))


# ----------------------------------------------------------------------------- the book
def _per_loan(name: str, value: ArrayLike, n: int, lo: float, hi: float) -> np.ndarray:
    a = _array(name, value, lo, hi)
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.shape != (n,):
        raise StresslabError(f"{name} must be a number or one value per loan ({n}); got shape {a.shape}")
    return a


def irb_capital(
    portfolio: Portfolio,
    *,
    lgd: ArrayLike = 0.45,
    maturity: ArrayLike | None = None,
    eur_per_cny: float = DEFAULT_EUR_PER_CNY,
    retail_threshold: float = DEFAULT_RETAIL_THRESHOLD_EUR,
    pd_floor: float = PD_FLOOR,
) -> xr.Dataset:
    """Basel II IRB capital of every loan of a book and of the whole book.

    Parameters
    ----------
    portfolio : Portfolio
        The book. EAD is ``balance``; PD is the loan's 12-month ``pd``, floored at ``pd_floor``.
    lgd : float or array_like of shape (n_loans,), default 0.45
        LGD in [0, 1]. 0.45 is the foundation-approach LGD of senior unsecured claims
        (paragraph 287); pledges and the simulation's recovery model are not used.
    maturity : float or array_like of shape (n_loans,), optional
        Effective maturity M in years for corporate exposures, in [1, 5] (paragraph 320).
        Default: remaining_term / 12 clamped to [1, 5]. Retail K has no maturity (paragraph 327).
    eur_per_cny : float, default :data:`DEFAULT_EUR_PER_CNY`
        Exchange rate used to compare CNY amounts with the EUR thresholds of paragraphs 231
        and 273 (default: CFETS central parity of 31 Dec 2024, 1 EUR = 7.5257 CNY).
    retail_threshold : float, default 1,000,000
        Retail threshold in EUR (paragraph 231): a borrower whose total exposure in the book
        is less than this is retail.
    pd_floor : float, default 0.0003
        PD floor (0.03 %, paragraphs 285 and 331).

    Returns
    -------
    xarray.Dataset
        Dims ``loan`` (coordinate: loan ids) and ``irb_class`` (:data:`ASSET_CLASSES`).
        Per loan: ``pd`` (floored), ``lgd``, ``ead`` (CNY), ``borrower_exposure_eur``,
        ``turnover_eur_m`` (annual sales, EUR millions; NaN when unknown), ``asset_class``
        (text), ``maturity`` (years; NaN for retail), ``correlation`` R, ``k``,
        ``risk_weight`` (12.5 K), ``rwa`` (12.5 K EAD, CNY), ``capital`` (K EAD, CNY),
        ``expected_loss`` (PD LGD EAD, CNY, paragraph 375). Totals: ``total_ead``,
        ``total_rwa``, ``total_capital``, ``total_expected_loss`` and ``ead_by_class``,
        ``rwa_by_class``, ``capital_by_class``, ``loans_by_class`` over ``irb_class``.
        Attrs record the inputs, the FX rate and the paragraphs.

    Raises
    ------
    StresslabError
        If ``lgd``, ``maturity``, ``eur_per_cny``, ``retail_threshold`` or ``pd_floor`` is
        out of range or of the wrong shape.

    Notes
    -----
    Classification (docs/regulatory.md):

    - A borrower's exposure is the sum of the balances of its loans in the book
      (``borrower_id``), converted to EUR. Paragraph 231: small-business loans, including
      those extended through an individual (a sole proprietor), are retail when the
      total exposure to the borrower is *less than* EUR 1 million; the book is assumed to be
      managed on a pooled basis (paragraph 232). These are "other retail" (paragraph 330).
    - Any other loan is corporate (paragraph 272). Its SME adjustment (paragraph 273) uses
      S = 12 x ``revenue_monthly`` in EUR millions (the largest known value among the
      borrower's loans), applied when S < 50; without a known revenue no adjustment is made
      (the conservative choice). Such loans are ``corporate_sme`` when S < 50, else
      ``corporate``.
    - No loan is treated as defaulted: the book's states (up to M3, 61-90 days past due)
      are short of the 90-day default of paragraph 452.
    - K is the paragraph 272/330 capital requirement: no 1.06 scaling factor (paragraph 14)
      and no deduction of provisions are applied.
    """
    n = portfolio.n_loans
    if not (np.isfinite(eur_per_cny) and eur_per_cny > 0):
        raise StresslabError(f"eur_per_cny must be a finite number > 0; got {eur_per_cny!r}")
    if not (np.isfinite(retail_threshold) and retail_threshold >= 0):
        raise StresslabError(f"retail_threshold (EUR) must be a finite number >= 0; got {retail_threshold!r}")
    if not 0.0 <= float(pd_floor) < 1.0:
        raise StresslabError(f"pd_floor must be in [0, 1); got {pd_floor!r}")
    lgd_a = _per_loan("lgd", lgd, n, 0.0, 1.0)
    if maturity is None:
        m = np.clip(portfolio.remaining_term / 12.0, 1.0, 5.0)
    else:
        m = _per_loan("maturity", maturity, n, 1.0, 5.0)

    pd = np.maximum(portfolio.pd, float(pd_floor))
    ead = np.asarray(portfolio.balance, dtype=np.float64)
    _, owner = portfolio.codes("borrower_id")
    n_borrowers = int(owner.max()) + 1
    exposure_eur = (np.bincount(owner, weights=ead, minlength=n_borrowers) * eur_per_cny)[owner]
    revenue = np.full(n_borrowers, np.nan)
    np.fmax.at(revenue, owner, portfolio.revenue_monthly)  # fmax ignores NaN: largest known value
    turnover = revenue[owner] * 12.0 * eur_per_cny / 1e6

    retail = exposure_eur < retail_threshold
    sme = ~retail & (turnover < 50.0)  # NaN < 50 is False: unknown turnover, no adjustment
    asset_class = np.where(retail, ASSET_CLASSES[0], np.where(sme, ASSET_CLASSES[1], ASSET_CLASSES[2]))

    r = np.where(retail, other_retail_correlation(pd), corporate_correlation(pd, np.where(sme, turnover, np.nan)))
    k = np.where(
        retail, other_retail_k(pd, lgd_a), corporate_k(pd, lgd_a, m, np.where(sme, turnover, np.nan))
    )
    capital = k * ead
    rwa = 12.5 * capital
    el = pd * lgd_a * ead
    masks = [asset_class == c for c in ASSET_CLASSES]

    def loan_var(values: np.ndarray, long_name: str, units: str) -> xr.Variable:
        return xr.Variable(("loan",), values, {"long_name": long_name, "units": units})

    def total(values: np.ndarray, long_name: str) -> xr.Variable:
        return xr.Variable((), float(values.sum()), {"long_name": long_name, "units": "CNY"})

    def by_class(values: np.ndarray, long_name: str, units: str = "CNY") -> xr.Variable:
        return xr.Variable(("irb_class",), np.array([values[mk].sum() for mk in masks]), {"long_name": long_name, "units": units})

    data = {
        "pd": loan_var(pd, f"12-month PD floored at {pd_floor:g}", "1"),
        "lgd": loan_var(lgd_a, "loss given default", "1"),
        "ead": loan_var(ead, "exposure at default (balance)", "CNY"),
        "borrower_exposure_eur": loan_var(exposure_eur, "total balance of the loan's borrower in the book", "EUR"),
        "turnover_eur_m": loan_var(turnover, "annual sales of the borrower (12 x revenue_monthly); NaN = unknown", "EUR million"),
        "asset_class": loan_var(asset_class, "IRB asset class", ""),
        "maturity": loan_var(np.where(retail, np.nan, m), "effective maturity M (corporate only)", "year"),
        "correlation": loan_var(r, "asset correlation R", "1"),
        "k": loan_var(k, "capital requirement K per unit of EAD", "1"),
        "risk_weight": loan_var(12.5 * k, "risk weight 12.5 K", "1"),
        "rwa": loan_var(rwa, "risk-weighted assets 12.5 K EAD", "CNY"),
        "capital": loan_var(capital, "capital requirement K EAD", "CNY"),
        "expected_loss": loan_var(el, "regulatory expected loss PD LGD EAD", "CNY"),
        "total_ead": total(ead, "total exposure at default"),
        "total_rwa": total(rwa, "total risk-weighted assets"),
        "total_capital": total(capital, "total IRB capital requirement (one year, 99.9%)"),
        "total_expected_loss": total(el, "total regulatory expected loss (one year)"),
        "ead_by_class": by_class(ead, "exposure at default by asset class"),
        "rwa_by_class": by_class(rwa, "risk-weighted assets by asset class"),
        "capital_by_class": by_class(capital, "IRB capital requirement by asset class"),
        "loans_by_class": by_class(np.ones(n, dtype=np.int64), "number of loans by asset class", "1"),
    }
    coords = {"loan": ("loan", portfolio.loan_id.copy()), "irb_class": ("irb_class", list(ASSET_CLASSES), {"long_name": "IRB asset class"})}
    attrs = {
        "title": "Basel II IRB capital of the book",
        "reference": "BCBS, International Convergence of Capital Measurement and Capital Standards, June 2006: "
        "paras 272-273 (corporate, SME), 330 (other retail), 231 (retail definition), 285/331 (PD floor), 320 (M)",
        "confidence": IRB_CONFIDENCE,
        "horizon_months": 12,
        "lgd": float(lgd_a[0]) if np.all(lgd_a == lgd_a[0]) else "per loan",
        "maturity": "remaining_term/12 clamped to [1, 5]" if maturity is None else ("per loan" if np.ndim(maturity) else float(maturity)),
        "eur_per_cny": float(eur_per_cny),
        "fx_note": "default: CFETS central parity 31 Dec 2024, 1 EUR = 7.5257 CNY" if eur_per_cny == DEFAULT_EUR_PER_CNY else "given by the caller",
        "retail_threshold_eur": float(retail_threshold),
        "pd_floor": float(pd_floor),
        "portfolio_digest": portfolio.digest,
        "currency": "CNY",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ----------------------------------------------------------------------------- reference
def irb_reference(
    ds: xr.Dataset, portfolio: Portfolio, *, level: float = IRB_CONFIDENCE, ci: float = 0.95, **irb_kwargs: object
) -> xr.Dataset:
    """The book's IRB capital beside the simulated capital VaR - EL of a run.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of :func:`stresslab.simulate` on ``portfolio`` (one scenario): ``loss_gross(path,
        month)`` and ``weight(path)`` are used.
    portfolio : Portfolio
        The book simulated; checked against the run's ``portfolio_digest`` attr when present.
    level : float, default 0.999
        Confidence level of the simulated VaR (0.999 matches the IRB functions).
    ci : float, default 0.95
        Coverage of the Monte Carlo confidence intervals.
    **irb_kwargs
        Passed to :func:`irb_capital` (``lgd``, ``maturity``, ``eur_per_cny``, ...).

    Returns
    -------
    xarray.Dataset
        Dims ``window`` and ``bound``. ``window`` is "horizon" (all T months of the run) and,
        when T >= 12, "12m" (months 1..12: the one-year window of the IRB figure); the
        coordinate ``window_months`` gives each window's length. Per window:
        ``simulated_expected_loss``, ``simulated_value_at_risk``, ``simulated_capital``
        (VaR - EL of the gross loss), their CIs (``..._ci``) and ``capital_ratio``
        (simulated / IRB capital). Scalars: ``irb_capital``, ``irb_expected_loss``,
        ``irb_rwa``, ``total_ead``. Attrs: ``level``, ``irb_confidence`` (0.999),
        ``irb_horizon_months`` (12), ``horizon_months`` (T) and a ``note`` on comparability.

    Notes
    -----
    The IRB figure is a one-year, 99.9 % unexpected loss with the supervisory asymptotic
    single-risk-factor model, fixed LGD and no stress; the simulated one is the scenario's
    loss over the run's horizon with the model's recoveries. They are compared only as
    orders of magnitude, and only for the same window: when T < 12 the simulated figure
    covers fewer months than the IRB year and understates a one-year figure; when T > 12 the
    "horizon" figure covers more (use "12m"). The interval of the simulated capital is the
    VaR interval shifted by the EL estimate (the EL's own Monte Carlo error, much smaller, is
    left out).
    """
    require_variables(
        ds, {"loss_gross": ("path", "month"), "weight": ("path",)}, "irb_reference needs loss_gross and weight"
    )
    digest = ds.attrs.get("portfolio_digest")
    if digest is not None and digest != portfolio.digest:
        raise StresslabError(
            f"the run was simulated on another book (digest {str(digest)[:12]}, this book {portfolio.digest[:12]}); "
            "pass the portfolio that was simulated"
        )
    pd_months = json.loads(ds.attrs.get("scenario", "{}")).get("pd_horizon_months", 12)
    if pd_months != 12:
        raise StresslabError(
            f"the run's book PDs are {pd_months}-month PDs (scenario pd_horizon_months = {pd_months}); the IRB "
            "reference needs one-year PDs: run the scenario with pd_horizon_months = 12")
    irb = irb_capital(portfolio, **irb_kwargs)  # type: ignore[arg-type]
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    loss = np.asarray(ds["loss_gross"].transpose("path", "month").values, dtype=np.float64)
    month = np.asarray(ds["month"].values)
    horizon = int(month.size)
    windows = [("horizon", horizon, loss.sum(axis=1))]
    if horizon >= 12:
        windows.append(("12m", 12, loss[:, month <= 12].sum(axis=1)))

    el, el_b, var, var_b = [], [], [], []
    for _, _, x in windows:
        m, lo, hi = mean_ci(x, w, ci)
        el.append(m)
        el_b.append((lo, hi))
        var.append(var_es(x, w, level)[0])
        var_b.append(var_ci(x, w, level, ci))
    el_a, var_a = np.array(el), np.array(var)
    capital = var_a - el_a
    irb_total = float(irb["total_capital"])
    pct = f"{100 * ci:g}%"

    def money(dims: tuple[str, ...], values: object, long_name: str) -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": "CNY"})

    data = {
        "simulated_expected_loss": money(("window",), el_a, "expected gross loss of the window"),
        "simulated_expected_loss_ci": money(("window", "bound"), np.array(el_b), f"{pct} Monte Carlo interval of the expected loss"),
        "simulated_value_at_risk": money(("window",), var_a, f"VaR {100 * level:g}% of the gross loss of the window"),
        "simulated_value_at_risk_ci": money(("window", "bound"), np.array(var_b), f"{pct} Monte Carlo interval of the VaR"),
        "simulated_capital": money(("window",), capital, "simulated capital VaR - EL of the window"),
        "simulated_capital_ci": money(
            ("window", "bound"), np.array(var_b) - el_a[:, None], f"{pct} Monte Carlo interval of VaR - EL (VaR interval minus EL)"
        ),
        "capital_ratio": xr.Variable(
            ("window",), capital / irb_total if irb_total > 0 else np.full(len(windows), np.nan),
            {"long_name": "simulated capital / IRB capital", "units": "1"},
        ),
        "irb_capital": money((), irb_total, "Basel IRB capital requirement (one year, 99.9%)"),
        "irb_expected_loss": money((), float(irb["total_expected_loss"]), "regulatory expected loss PD LGD EAD (one year)"),
        "irb_rwa": money((), float(irb["total_rwa"]), "IRB risk-weighted assets"),
        "total_ead": money((), float(irb["total_ead"]), "total exposure at default"),
    }
    coords = {
        "window": ("window", [name for name, _, _ in windows], {"long_name": "loss window of the simulated figures"}),
        "window_months": ("window", np.array([t for _, t, _ in windows], dtype=np.int64), {"long_name": "months in the window"}),
        "bound": ("bound", ["low", "high"]),
    }
    if horizon < 12:
        note = (
            f"the run's horizon is {horizon} months, shorter than the IRB's one year: the simulated capital "
            "covers fewer months and is not a one-year figure"
        )
    elif horizon == 12:
        note = "the run's horizon is 12 months, the IRB's one year: windows 'horizon' and '12m' coincide"
    else:
        note = f"the run's horizon is {horizon} months: compare the IRB's one-year figure with window '12m'"
    attrs = {
        "title": "IRB capital beside the simulated capital",
        "level": float(level),
        "ci": float(ci),
        "irb_confidence": IRB_CONFIDENCE,
        "irb_horizon_months": 12,
        "horizon_months": horizon,
        "note": note,
        **{f"irb_{key}": value for key, value in irb.attrs.items() if key in ("lgd", "maturity", "eur_per_cny", "retail_threshold_eur", "pd_floor")},
    }
    for key in ("scenario_name", "portfolio_digest", "seed", "n_paths"):
        if key in ds.attrs:
            attrs[key] = ds.attrs[key]
    return xr.Dataset(data, coords=coords, attrs=attrs)
