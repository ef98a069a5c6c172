"""benchmarks/bench_peers.py: its book file and its check, without any peer installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_peers


@pytest.mark.parametrize("copula", ["gaussian", "t"])
def test_book_file_round_trips(tmp_path: Path, copula: str) -> None:
    book = bench_peers.make_book(50, copula, dof=5.0, seed=3)
    bench_peers.write_book(tmp_path / "book.npz", book)
    back = bench_peers.read_book(tmp_path / "book.npz")
    for field in ("pd", "ead", "lgd", "loading"):
        np.testing.assert_array_equal(getattr(back, field), getattr(book, field))
    assert (back.copula, back.dof, back.n_names) == (copula, 5.0, 50)


def _normal(seed: int, mean: float, sd: float, n: int = 20_000) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_check_accepts_samples_of_one_law() -> None:
    check = bench_peers.compare_losses(_normal(1, 100, 10), _normal(2, 100, 10))
    assert check.ok, check.describe("a", "b")
    # the second sample as antithetic pairs: its mean has no error, the check still holds
    z = np.random.default_rng(3).standard_normal(10_000)
    pairs = np.concatenate([100 + 10 * z, 100 - 10 * z])
    check = bench_peers.compare_losses(_normal(1, 100, 10), pairs, b_antithetic=True)
    assert check.ok and check.el_se == pytest.approx(10 / np.sqrt(20_000), rel=0.05)


def test_check_rejects_a_shifted_mean() -> None:
    check = bench_peers.compare_losses(
        _normal(1, 100, 10), _normal(2, 101, 10)
    )  # 10 se apart
    assert not check.ok
    assert "DISAGREE" in check.describe("a", "b")


def test_check_rejects_a_fatter_tail_with_the_same_mean() -> None:
    check = bench_peers.compare_losses(_normal(1, 100, 10), _normal(2, 100, 15))
    assert abs(check.el[0] - check.el[1]) < check.z * check.el_se
    assert not check.ok  # P(L > VaR99 of a) is about 0.06 for b


def test_a_missing_peer_is_named_with_how_to_get_it() -> None:
    if bench_peers._importable("financepy"):
        pytest.skip("financepy is importable here")
    message = bench_peers.locate("financepy", None, make=False)
    assert isinstance(message, str)
    assert "financepy is missing" in message and "--make-venvs" in message
