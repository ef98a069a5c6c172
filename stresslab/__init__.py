"""stresslab: Monte Carlo credit stress tests of small-business micro-loan books.

Load a book and a scenario, simulate, summarise::

    import stresslab
    book = stresslab.synthetic_portfolio(20_000, seed=0)      # or load_portfolio("book.csv")
    scenario = stresslab.load_scenario("scenarios/services_downturn.toml")
    ds = stresslab.simulate(book, scenario, n_paths=2_000, seed=1)
    print(stresslab.format_summary(stresslab.summary(ds)))
"""

from stresslab.compare import compare, scenario_run, sweep
from stresslab.contributions import es_contributions, expected_loss_contributions
from stresslab.engine import simulate
from stresslab.errors import InternalError, PortfolioError, ScenarioError, StresslabError, StresslabWarning
from stresslab.paired import compare_summary, format_comparison
from stresslab.portfolio import Portfolio, load_portfolio, synthetic_portfolio
from stresslab.regulatory import irb_capital, irb_reference
from stresslab.report import write_report
from stresslab.results import format_summary, load_results, save_results, summary
from stresslab.scenario import Scenario, load_scenario

__version__ = "0.1.0"

__all__ = [
    "InternalError",
    "Portfolio",
    "PortfolioError",
    "Scenario",
    "ScenarioError",
    "StresslabError",
    "StresslabWarning",
    "compare",
    "compare_summary",
    "es_contributions",
    "expected_loss_contributions",
    "format_comparison",
    "format_summary",
    "irb_capital",
    "irb_reference",
    "load_portfolio",
    "load_results",
    "load_scenario",
    "save_results",
    "scenario_run",
    "simulate",
    "summary",
    "sweep",
    "synthetic_portfolio",
    "write_report",
]
