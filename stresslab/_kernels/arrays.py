"""The kernels' inputs and outputs: NamedTuples of arrays, and the integer codes in them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "AllowanceArrays","LoanArrays", "Tables", "Params", "PolicyArrays", "Outputs", "LayerArrays", "QUOTA_SHARE", "EXCESS_OF_LOSS", "BASIS_EAD", "BASIS_PRINCIPAL"]


STATE_D = 4


STATE_P = 5


STAGE_TO_S3, STAGE_TO_REPAID = 2, 3  # destinations of Outputs.stage_transition besides S1 (0) and S2 (1)


ANNUITY, EQUAL_PRINCIPAL, INTEREST_ONLY, BULLET = 0, 1, 2, 3


class LoanArrays(NamedTuple):
    """Per-loan inputs, shape (n_loans,) each (see stresslab.compile.model for their meaning)."""

    key: np.ndarray  # uint64 random-stream key of the loan
    industry: np.ndarray  # int32 index into the industry axis
    region: np.ndarray  # int32 index into the region axis
    group: np.ndarray  # int32 row of Tables.log_mult (installment multiplier group)
    amortization: np.ndarray  # int8 ANNUITY..BULLET
    state: np.ndarray  # int8 initial missed installments 0..3
    term: np.ndarray  # int32 months to maturity
    principal: np.ndarray  # performing principal (not yet due)
    arrears_principal: np.ndarray
    arrears_interest: np.ndarray
    installment: np.ndarray  # level installment (annuity) or principal part (equal principal)
    rate: np.ndarray  # monthly interest rate
    threshold: np.ndarray  # c_j = F^{-1}(p_j), the entry (miss) threshold calibrated to the pd
    inv_sigma: np.ndarray  # 1 / sigma_j
    sigma: np.ndarray
    rho: np.ndarray  # systematic variance of the latent
    inv_idio: np.ndarray  # 1 / sqrt(1 - rho_j)
    inv_idio_delinquent: np.ndarray  # 1 / sqrt(1 - kappa^2 rho_j), the delinquent states' latent
    pledge: np.ndarray  # pledged receivables at nominal value
    recovery_probit: np.ndarray  # Phi^{-1}(m0_j) sqrt(1 + beta^2 rho_j) of the unsecured recovery mean
    pledge_pv: np.ndarray  # discount factor of pledge proceeds to the default month
    unsecured_pv: np.ndarray  # discount factor of unsecured recoveries
    track: np.ndarray  # int32 column of loss_by_loan for loans tracked on request, -1 otherwise


class Tables(NamedTuple):
    """Scenario tables shared by all loans."""

    cell: np.ndarray  # (T, n_ind, n_reg): -log(season) - log(1 + shock)
    revenue: np.ndarray  # (T, n_ind, n_reg): season * (1 + shock)
    log_mult: np.ndarray  # (n_groups, T): log(I_{j,t} / I_j^0)
    sqrt_cov: np.ndarray  # (K, K): A with A A' = Sigma
    loadings: np.ndarray  # (n_ind, 3): global, industry, region loadings
    factor_key: np.ndarray  # (K,) uint64 stream keys of the factors
    factor_shift: np.ndarray  # (T + 1, K) mean of eta_t under importance sampling (0: plain MC)
    factor_mean: np.ndarray  # (T + 1, K) mean of eta_t under the scenario's own law ([factors] innovation_mean)
    roll_threshold: np.ndarray  # (3,) a_k = F^{-1}(r_k)
    cure_threshold: np.ndarray  # (3,) b_k = F^{-1}(1 - q_k)
    norm: np.ndarray  # tabulated normal CDF values


class Params(NamedTuple):
    """Scalar parameters."""

    ar1: float
    t_copula: bool
    dof: float
    default_after: int
    roll_sensitivity: float
    cure_sensitivity: float
    prepay_threshold: float  # F^{-1}(1 - pi); inf without prepayment
    cycle_sensitivity: float  # kappa: the delinquent states' loading on the systematic index
    recovery_cycle: float  # beta: the recovery mean's loading on the systematic index
    recovery_dispersion: float
    recovery_cost: float
    recovery_lag: int
    pledge_haircut: float
    pledge_lag: int
    lgd_sensitivity: float
    deferral_months: int
    deferral_accrue: bool  # capitalise the interest of deferred months (else waived)
    deferral_extend: bool  # maturity moves by the deferral (else the term is compressed)
    track_cover: bool  # accumulate covered balances (some layer charges a fee)
    norm_lo: float
    norm_inv_step: float
    # importance sampling: share of paths drawn from the nominal law (defensive mixture,
    # docs/importance_sampling.md); 1 = plain MC, and every weight is <= 1 / defensive_share
    defensive_share: float = 1.0
    # importance sampling: a tilted path draws the t mixing chi2 as 2 Gamma(dof / 2 + chi2_shape_shift)
    chi2_shape_shift: float = 0.0


class PolicyArrays(NamedTuple):
    """Policy levers per loan (MODEL.md §6); months are 0-based, -1 = never."""

    flag: np.ndarray  # uint8: some lever changes this loan's terms (the kernel's slow path)
    # shape (0,) when no loan has a lever, (0, 0) otherwise: its ndim is a compile-time
    # constant, so the kernel compiled for books without levers carries none of their code
    enabled: np.ndarray
    deferral_start: np.ndarray  # int32 month a deferral would start
    deferral_states: np.ndarray  # (4,) uint8: states C..M3 eligible for the deferral
    gap_month: np.ndarray  # int32 month the excess over the borrower cap falls due
    gap_amount: np.ndarray  # the loan's share of its borrower's excess the borrower must pay (not refinanced)
    gap_refinanced: np.ndarray  # the share of it other lenders refinance
    subsidy: np.ndarray  # monthly rate paid by the state
    subsidy_start: np.ndarray  # int32, first month of the subsidy
    subsidy_end: np.ndarray  # int32, month after the last
    reprice_month: np.ndarray  # int32 month the rate cap re-prices the loan
    reprice_rate: np.ndarray  # monthly rate after re-pricing
    shaped: np.ndarray  # uint8: installments follow the seasonality
    shape: np.ndarray  # (n_ind, T) seasonal installment factors
    shape_scale: np.ndarray  # per loan: keeps the shaped installments' present value


class AllowanceArrays(NamedTuple):
    """IFRS 9 allowance tables (stresslab.compile.provisions): per loan, year end, state and index node.

    The allowance of loan j at year end e in state k with standardised index y and arrears
    A is alpha + beta A, linear in y between the nodes lo + g / inv_step. alpha and beta of
    a node sit side by side (last axis), so that a lookup reads one cache line. Shape
    (0, 1, 4, 1, 2) when the run records no allowance.
    """

    table: np.ndarray  # (n_loans, n_year_ends, 4, G, 2): alpha, beta; year end 0 is the start
    lo: float
    inv_step: float  # 0 when G = 1 (through the cycle: one node)


class Outputs(NamedTuple):
    """Per-path results of a chunk; first axis is the path within the chunk."""

    loss_gross: np.ndarray  # (P, T)
    loss_net: np.ndarray  # (P, T)
    interest_income: np.ndarray  # (P, T)
    recoveries: np.ndarray  # (P, T)
    balance_by_state: np.ndarray  # (P, T, 6)
    count_by_state: np.ndarray  # (P, T, 6) int64
    loss_by_cell: np.ndarray  # (P, n_ind, n_reg) gross loss over the horizon
    loss_by_loan: np.ndarray  # (P, n_tracked) gross loss over the horizon of tracked loans
    layer_paid: np.ndarray  # (P, T, L) loss borne by each layer, in the default month
    layer_cash: np.ndarray  # (P, T, L) payout cash, in the month it is paid
    layer_capacity_left: np.ndarray  # (P, T, L)
    layer_fee: np.ndarray  # (P, T, L)
    layer_failure_month: np.ndarray  # (P, L) int64, 1-based; 0 = did not fail
    subsidy_cost: np.ndarray  # (P, T) interest paid by the state
    deferred_count: np.ndarray  # (P, T) int64 loans in a deferral
    gap_paid: np.ndarray  # (P, T) loan-cap gap paid (due month, or a cure clearing gap arrears)
    gap_defaulted: np.ndarray  # (P, T) gap arrears of the loans defaulting in the month
    interest_foregone: np.ndarray  # (P, T) interest not charged: rate cap's cut, waived deferral
    # (P, Y, 2, 4) exposure at the start of year y of the loans in S1 / S2 then, by where they are at its end:
    # S1, S2, S3 (defaulted in the year), repaid; (P, 0, 2, 4) when not recorded (pooled books)
    stage_transition: np.ndarray
    allowance: np.ndarray  # (P, Y, 2) S1 and S2 allowance at the end of each year; (P, 0, 2) when not recorded
    weight: np.ndarray  # (P,) likelihood ratio of the path (1 without importance sampling)
    eta: np.ndarray  # (P, T + 1, K) factor innovations, for tuning IS; (P, 0, K) when not recorded
    chi2: np.ndarray  # (P,) chi-square of the t mixing (0 for the Gaussian copula)


QUOTA_SHARE, EXCESS_OF_LOSS = 0, 1


BASIS_EAD, BASIS_PRINCIPAL = 0, 1


class LayerArrays(NamedTuple):
    """Layers in order, shape (n_layers,) unless said; ``inf`` means unlimited."""

    kind: np.ndarray  # int8 QUOTA_SHARE | EXCESS_OF_LOSS
    share: np.ndarray
    attachment: np.ndarray
    limit: np.ndarray
    basis: np.ndarray  # int8 BASIS_EAD | BASIS_PRINCIPAL
    per_loan_limit: np.ndarray
    capacity: np.ndarray
    topup_every: np.ndarray  # int64, 0 = never
    annual_cap: np.ndarray
    lag: np.ndarray  # int64 months from default to payout cash
    monthly_fee: np.ndarray  # fee rate / 12 on the covered balance
    eligible: np.ndarray  # (n_layers, n_loans) uint8
    failure_threshold: np.ndarray  # probit of the monthly failure hazard, -inf = never fails
    failure_loading: np.ndarray  # loading of the provider's latent on the global factor
    key: np.ndarray  # uint64 random-stream keys of the layers
    cover_class: np.ndarray  # (n_loans,) int32 eligibility class of each loan
    class_mask: np.ndarray  # (n_classes, n_layers) uint8: which layers cover a class
