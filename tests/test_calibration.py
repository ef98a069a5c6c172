"""Calibration of monthly entry probabilities (MODEL.md §2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stresslab.calibration import default_probability_12m, latent_threshold, monthly_entry_probability
from stresslab.errors import ScenarioError

ROLL = np.array([0.35, 0.55, 0.75])
CURE = np.array([0.30, 0.15, 0.08])


def test_first_miss_is_default_closed_form():
    pd = np.array([0.0, 0.01, 0.2, 0.9])
    np.testing.assert_allclose(monthly_entry_probability(pd, 1, ROLL, CURE), 1 - (1 - pd) ** (1 / 12), rtol=1e-13)


def test_chain_with_one_miss_matches_hand_computation():
    # default_after 1: P(D by 12) = 1 - (1 - p)^12
    p = np.array([0.01, 0.1])
    np.testing.assert_allclose(default_probability_12m(p, 1, ROLL, CURE), 1 - (1 - p) ** 12, rtol=1e-14)


@settings(max_examples=50, deadline=None)
@given(pd=st.floats(0.0, 0.5), default_after=st.integers(1, 4))
def test_root_find_inverts_the_chain(pd, default_after):
    p = monthly_entry_probability(np.array([pd]), default_after, ROLL, CURE)
    assert 0.0 <= p[0] <= 1.0
    np.testing.assert_allclose(default_probability_12m(p, default_after, ROLL, CURE), pd, atol=1e-13)


def test_more_missed_installments_to_default_need_a_higher_entry_rate():
    pd = np.array([0.05])
    ps = [monthly_entry_probability(pd, k, ROLL, CURE)[0] for k in (1, 2, 3, 4)]
    assert ps == sorted(ps)


def test_unreachable_pd_names_the_limit():
    with pytest.raises(ScenarioError, match=r"at most 0\.\d+, but the book has pd = 0\.9900"):
        monthly_entry_probability(np.array([0.99]), 4, np.array([0.1, 0.1, 0.1]), np.array([0.5, 0.4, 0.4]))


def test_thresholds():
    p = np.array([0.01, 0.5])
    np.testing.assert_allclose(latent_threshold(p, "gaussian", None), [-2.3263478740408408, 0.0], atol=1e-14)
    assert latent_threshold(p, "t", 4.0)[0] < latent_threshold(p, "gaussian", None)[0]
