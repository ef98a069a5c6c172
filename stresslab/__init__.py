"""stresslab: Monte Carlo credit stress tests of small-business micro-loan books.

Load a book and a scenario, simulate, summarise::

    import stresslab
    book = stresslab.synthetic_portfolio(20_000, seed=0)      # or load_portfolio("book.csv")
    scenario = stresslab.load_scenario("scenarios/services_downturn.toml")
    ds = stresslab.simulate(book, scenario, n_paths=2_000, seed=1)
    print(stresslab.format_summary(stresslab.summary(ds)))
"""

from stresslab.book.history import History, load_history
from stresslab.book.portfolio import Portfolio, load_portfolio
from stresslab.book.synthetic import synthetic_portfolio
from stresslab.calibrate import (
    AssetCorrelationFit,
    Calibration,
    calibrate,
    fit_asset_correlation,
    fit_transitions,
    implied_pd,
    observed_pd,
)
from stresslab.compile.provisions import expected_credit_loss
from stresslab.errors import (
    InternalError,
    PortfolioError,
    ScenarioError,
    StresslabError,
    StresslabWarning,
)
from stresslab.io import load_results, save_results
from stresslab.metrics.contributions import (
    es_contributions,
    expected_loss_contributions,
)
from stresslab.metrics.ifrs9 import stage_summary
from stresslab.metrics.paired import compare_summary
from stresslab.metrics.regulatory import irb_capital, irb_reference
from stresslab.metrics.summary import summary
from stresslab.report import write_report
from stresslab.reverse import ReverseStress, reverse_stress
from stresslab.run.compare import compare, scenario_run, sweep
from stresslab.run.history import simulate_history
from stresslab.run.simulate import simulate
from stresslab.scenario.scenario import Scenario, load_scenario
from stresslab.text import format_comparison, format_reverse_stress, format_stages, format_summary

__version__ = "0.1.0"

__all__ = [
    "AssetCorrelationFit",
    "Calibration",
    "History",
    "InternalError",
    "Portfolio",
    "PortfolioError",
    "ReverseStress",
    "Scenario",
    "ScenarioError",
    "StresslabError",
    "StresslabWarning",
    "calibrate",
    "compare",
    "compare_summary",
    "es_contributions",
    "expected_credit_loss",
    "expected_loss_contributions",
    "fit_asset_correlation",
    "fit_transitions",
    "format_comparison",
    "format_reverse_stress",
    "format_stages",
    "format_summary",
    "implied_pd",
    "irb_capital",
    "irb_reference",
    "load_history",
    "load_portfolio",
    "load_results",
    "load_scenario",
    "observed_pd",
    "reverse_stress",
    "save_results",
    "scenario_run",
    "simulate",
    "simulate_history",
    "stage_summary",
    "summary",
    "sweep",
    "synthetic_portfolio",
    "write_report",
]
