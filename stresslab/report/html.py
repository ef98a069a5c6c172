"""A run's report: one self-contained HTML page with its tables and plots.

:func:`write_report` turns a run of :func:`stresslab.simulate` (MODEL.md §8) into a single
HTML file that needs nothing else to be read: figures are PNG images embedded as base64
``data:`` URIs, the style sheet is inline, and there is no script, font, link or image
from anywhere else (a Content-Security-Policy in the page forbids them).

The work is split in three: :mod:`stresslab.report.page` computes the values (numbers as
text, table rows, figures), :mod:`stresslab.report.figures` draws the figures, and the
jinja2 template ``templates/report.html.j2`` (with ``templates/sections/<id>.html.j2`` and
the macros of ``templates/macros.html.j2``) does all the markup. Autoescaping is on, so
every string from the data (scenario text and names, book source, industry, region and
layer names, ...) is shown as text; ``StrictUndefined`` makes a value the template asks
for and page.py does not give an error, not an empty string. ``report.css`` is inlined into
the page. docs/report.md describes the sections and how to add one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import jinja2
import xarray as xr

from stresslab._files import write_atomically, write_failure_reason
from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.report.page import CI, Share, check, page_values

__all__ = ["render", "write_report"]


@functools.cache
def _template() -> tuple[jinja2.Template, str]:
    """The page template and the style sheet, read from the package once."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stresslab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["ci"] = lambda cell: isinstance(cell, CI)
    env.tests["share"] = lambda cell: isinstance(cell, Share)
    css = resources.files("stresslab.report").joinpath("report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2"), css


def render(
    ds: xr.Dataset,
    *,
    portfolio: Portfolio | None = None,
    levels: Sequence[float] = (0.95, 0.99, 0.999),
    title: str | None = None,
) -> str:
    """The HTML page of :func:`write_report` (same arguments and errors), as text."""
    levels = tuple(float(a) for a in levels)
    check(ds, portfolio, levels)
    template, css = _template()
    return template.render(css=css, **page_values(ds, portfolio, levels, title))


def write_report(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    portfolio: Portfolio | None = None,
    levels: Sequence[float] = (0.95, 0.99, 0.999),
    title: str | None = None,
) -> None:
    """Write a run's report: one self-contained HTML page, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of :func:`stresslab.simulate` (one scenario; :func:`stresslab.load_results`
        of a saved run works too).
    path : str or os.PathLike
        Target file (``.html``); replaced if it exists.
    portfolio : Portfolio, optional
        The book that was simulated (checked against the run's ``portfolio_digest``). With
        it the report adds tables of the book by industry and region and the Basel IRB
        reference; a run alone does not hold the book.
    levels : sequence of float, default (0.95, 0.99, 0.999)
        Levels of VaR and ES in the headline table, each in (0, 1). The loss distribution
        marks the two highest; ES contributions and the loss allocation use 0.99 (or the
        highest level when 0.99 is not among them).
    title : str, optional
        Page title; default "Stress test report: <scenario name>".

    Raises
    ------
    StresslabError
        If ``ds`` is not a single run (a ``scenario`` dimension, a summary), a level is
        outside (0, 1), the portfolio is not the simulated book, or the file cannot be
        written (the message says why; any earlier file at ``path`` is then unchanged and
        no temporary file is left).

    Notes
    -----
    Sections: scenario (summary, the TOML text in a collapsible block, the resolved
    JSON), book, headline figures (EL, standard deviation, VaR and ES with confidence
    intervals, gross and net, horizon and first 12 months; DPD30+ ratios), loss and
    delinquency plots (loss distribution, exceedance curve, DPD30+ fan, state stack,
    heat map), ES and EL contributions by industry and region, credit-enhancement layers
    (when the run has them), policy levers (when the scenario has them), the IRB reference
    (with ``portfolio``) and provenance. A plot the data do not allow (e.g. an exceedance
    curve with no loss at all) is replaced by a note saying why. Figures are PNG at
    100 dpi, 900 px wide, embedded as ``data:`` URIs and closed once encoded.
    """
    text = render(ds, portfolio=portfolio, levels=levels, title=title)
    data = text.encode("utf-8")
    path = Path(path)
    if not path.parent.is_dir():
        raise StresslabError(f"could not write the report to {path}: the directory {path.parent} does not exist")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    try:
        write_atomically(path, write)
    except OSError as exc:
        raise StresslabError(
            f"could not write the report to {path}: {write_failure_reason(exc, path.parent, len(data))}; "
            "any earlier file there is unchanged"
        ) from exc
