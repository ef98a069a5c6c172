"""The HTML report (stresslab.report.html.write_report): sections, embedded images, escaping, atomic
writes, the template and its package data in a wheel, and the page as headless Chromium renders it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import jinja2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import stresslab
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci
from stresslab.report import html as report_html
from stresslab.report.html import write_report

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PNG = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"
pytestmark = pytest.mark.filterwarnings("error")


# ------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def book() -> stresslab.Portfolio:
    return stresslab.synthetic_portfolio(200, seed=1)


def _run(book: stresslab.Portfolio, name: str, n_paths: int = 200, **overrides: object) -> xr.Dataset:
    scenario = stresslab.load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if overrides:
        scenario = scenario.with_overrides(overrides)
    return stresslab.simulate(book, scenario, n_paths=n_paths, seed=4)


@pytest.fixture(scope="module")
def plain(book: stresslab.Portfolio) -> xr.Dataset:
    return _run(book, "services_downturn")


@pytest.fixture(scope="module")
def layered(book: stresslab.Portfolio) -> xr.Dataset:
    # the insurer's capacity sized to this small book so that it binds in bad paths
    return _run(book, "guarantee_insurance", **{"layers.insurer.capacity": 1_500_000.0})


@pytest.fixture(scope="module")
def subsidised(book: stresslab.Portfolio) -> xr.Dataset:
    return _run(book, "interest_subsidy")


_TEXT_OF = ("h2", "pre", "td", "title")  # tags whose text Page keeps, one string per element


class Page(HTMLParser):
    """What the tests look at in a page: tags, attributes, sections, texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.h2: list[str] = []
        self.pre: list[str] = []
        self.td: list[str] = []  # the text of each cell, of what it holds too (<br>, <span>)
        self.title: list[str] = []
        self.text: list[str] = []
        self.tables = 0
        self._open: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(str(attributes["id"]))
        if tag == "table":
            self.tables += 1
        if tag in _TEXT_OF:
            getattr(self, tag).append("")
        if tag not in ("img", "meta", "br", "link", "input"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for tag in _TEXT_OF:
            if tag in self._open:
                getattr(self, tag)[-1] += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]

    @property
    def plain_text(self) -> str:
        return "".join(self.text)


def _write(tmp_path: Path, ds: xr.Dataset, name: str = "report.html", **kwargs: object) -> tuple[Path, str, Page]:
    path = tmp_path / name
    write_report(ds, path, **kwargs)
    text = path.read_text(encoding="utf-8")
    return path, text, Page(text)


def _section_ids(page: Page) -> list[str]:
    return [str(a["id"]) for t, a in page.tags if t == "section"]


def _images(page: Page) -> list[Image.Image]:
    out = []
    for attrs in page.all("img"):
        src = str(attrs["src"])
        assert src.startswith(DATA_PNG), src[:40]
        data = base64.b64decode(src[len(DATA_PNG):], validate=True)
        assert data[:8] == PNG
        Image.open(io.BytesIO(data)).verify()  # a complete, valid PNG
        image = Image.open(io.BytesIO(data))
        image.load()
        assert (image.width, image.height) == (int(attrs["width"]), int(attrs["height"]))
        assert attrs.get("alt")
        out.append(image)
    return out


def _assert_self_contained(text: str, page: Page) -> None:
    """No resource from anywhere else: only data: images, in-page links, inline style, no script."""
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "audio", "video", "source", "base", "form"), tag
        for name, value in attrs.items():
            value = value or ""
            assert not name.startswith("on"), (tag, name)  # no inline event handlers
            if name == "src":
                assert value.startswith(DATA_PNG), (tag, value[:40])
            if name == "href":
                assert value.startswith("#") and value[1:] in page.ids, (tag, value)
            if name not in ("src",):
                assert "http:" not in value and "https:" not in value and "//" not in value, (tag, name, value)
    styles = re.findall(r"<style>(.*?)</style>", text, flags=re.S)
    assert len(styles) == 1 and "url(" not in styles[0] and "@import" not in styles[0]


# ------------------------------------------------------------------ sections
def test_report_of_a_plain_run_without_the_book(tmp_path: Path, plain: xr.Dataset) -> None:
    _, text, page = _write(tmp_path, plain)
    assert _section_ids(page) == ["scenario", "book", "headline", "plots", "contributions", "ifrs9", "provenance"]
    assert page.all("title") and "services_downturn" in page.plain_text
    assert page.h2 == ["Scenario", "Book", "Headline figures", "Loss and delinquency",
                       "Risk contributions by industry and region", "IFRS 9 stages and provisions", "Provenance"]
    # the scenario file, collapsible and verbatim (escaped in the HTML, equal once parsed)
    assert len(page.all("details")) == 2 and len(page.all("summary")) == 2
    assert page.pre[0] == plain.attrs["scenario_text"]
    # headline: EL, Std, VaR and ES per level, gross only (no layers), horizon and 12 months
    s = stresslab.summary(plain)
    el = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    assert f"{el:,.0f}" in text
    for level in ("95%", "99%", "99.9%"):
        assert f"VaR {level}" in page.plain_text and f"ES {level}" in page.plain_text
    assert "gross loss, months 1–36" in page.plain_text and "gross loss, months 1–12" in page.plain_text
    # a VaR / ES the run cannot bound from above says how many paths it needs, not "∞" (issue 14)
    needed = int(s["value_at_risk_paths_needed"].sel(measure="gross", window="horizon", level=0.999))
    assert needed > plain.sizes["path"]
    assert f"n/a (too few paths: {needed:,} needed)" in page.plain_text and "∞" not in page.plain_text
    assert "net loss, months" not in page.plain_text
    # plots: loss distribution, exceedance, DPD30+ fan, state stack, heat map; the IFRS 9 stage mix
    alts = [a["alt"] for a in page.all("img")]
    assert alts == ["Distribution of the gross loss", "Exceedance curve of the gross loss", "DPD30+ ratio fan",
                    "Balance by delinquency state", "Expected gross loss by industry and region", "Exposure by IFRS 9 stage"]
    images = _images(page)
    assert all(image.width == 900 for image in images)
    # ES contributions by industry and by region: each table's total is the ES 99% of the run
    es = stresslab.es_contributions(plain, level=0.99)
    assert text.count(f"{float(es['expected_shortfall']):,.0f}") >= 2
    assert "The book itself was not passed" in page.plain_text
    for key in ("seed", "n_paths", "portfolio_digest", "versions", "sampling", "scenario_source"):
        assert str(plain.attrs[key]) in page.plain_text, key
    _assert_self_contained(text, page)


def test_report_with_the_book_has_segment_tables_and_the_irb_reference(tmp_path: Path, plain: xr.Dataset, book) -> None:
    _, text, page = _write(tmp_path, plain, portfolio=book)
    assert "irb" in _section_ids(page)
    ref = stresslab.irb_reference(plain, book)
    assert f"{float(ref['irb_capital']):,.0f}" in text
    assert f"{float(ref['simulated_capital'].sel(window='12m')):,.0f}" in text
    assert "By industry" in page.plain_text and "By region" in page.plain_text
    for industry in book.industries:
        assert industry in page.plain_text
    assert f"{book.balance.sum():,.0f}" in text  # total balance
    _assert_self_contained(text, page)


def test_report_with_layers(tmp_path: Path, layered: xr.Dataset) -> None:
    _, text, page = _write(tmp_path, layered)
    assert "layers" in _section_ids(page) and "policy" not in _section_ids(page)
    assert "Who bears the loss" in page.plain_text
    s = stresslab.summary(layered)
    for party in ("insurer", "lender"):
        assert f"{float(s['party_expected'].sel(party=party)):,.0f}" in text
    assert "net loss, months 1–36" in page.plain_text
    alts = [a["alt"] for a in page.all("img")]
    for alt in ("Distribution of the net loss", "Loss allocation between layers and lender", "Capacity left of layer insurer",
                "Exhaustion of layer capacity"):
        assert alt in alts
    _images(page)
    _assert_self_contained(text, page)


def test_report_with_policy_levers(tmp_path: Path, subsidised: xr.Dataset) -> None:
    _, text, page = _write(tmp_path, subsidised)
    assert "policy" in _section_ids(page) and "layers" not in _section_ids(page)
    assert "interest_subsidy" in page.plain_text and "points = 0.02" in page.plain_text
    total = subsidised["subsidy_cost"].transpose("path", "month").values.sum(axis=1)
    m, low, high = mean_ci(total, subsidised["weight"].values)
    assert f"{m:,.0f} [{low:,.0f}, {high:,.0f}]" in page.plain_text
    assert "Interest subsidy cost per month" in [a["alt"] for a in page.all("img")]
    assert "Loans in a deferral per month" not in [a["alt"] for a in page.all("img")]  # no deferral lever
    _images(page)
    _assert_self_contained(text, page)


def test_report_of_an_importance_sampled_run_shows_the_shift(tmp_path: Path, book) -> None:
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml")
    ds = stresslab.simulate(book, scenario, n_paths=200, seed=4, tail="is", target=0.99, pilot_paths=200)
    _, text, page = _write(tmp_path, ds)
    shift = np.array(json.loads(ds.attrs["factor_shift"]))
    assert shift.shape == (37, 1 + len(book.industries) + len(book.regions))
    assert f"month 0: [{shift[0, 0]:.2f}, " in page.plain_text
    assert f"norm over 37 months {np.linalg.norm(shift):.2f}" in page.plain_text
    assert "pooled book" not in page.plain_text
    _assert_self_contained(text, page)


def test_report_of_a_pooled_run_says_so(tmp_path: Path) -> None:
    frame = stresslab.synthetic_portfolio(40, seed=2).to_frame()
    twins = pd.concat([frame.assign(loan_id=frame.loan_id + f"-{k}") for k in range(5)], ignore_index=True)
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml")
    ds = stresslab.simulate(stresslab.Portfolio.from_frame(twins), scenario, n_paths=50, seed=4, pooled=True)
    _, text, page = _write(tmp_path, ds)
    assert "200 loans in 40 pools of identical loans" in page.plain_text
    _assert_self_contained(text, page)


def test_report_escapes_every_string_from_the_data(tmp_path: Path, book) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b>'
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "baseline.toml").with_overrides(
        {"description": evil, "name": "evil<img src=x onerror=alert(1)>"}
    )
    ds = stresslab.simulate(book, scenario, n_paths=50, seed=1)
    ds.attrs["scenario_text"] = "</pre><script>alert(2)</script>"
    ds.attrs["portfolio_source"] = '"><iframe src="http://example.com">'
    _, text, page = _write(tmp_path, ds, portfolio=book, title="Title <i>with</i> tags")
    assert not page.all("script") and not page.all("iframe") and not page.all("b") and not page.all("i")
    assert [a["src"][:22] for a in page.all("img")] == [DATA_PNG] * len(page.all("img"))
    # html.escape wrote &quot;, jinja2's autoescape (markupsafe) writes &#34;: the same character
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in re.sub("&(quot|#34);", '"', text)
    assert evil in page.plain_text  # shown as text
    assert "</pre><script>alert(2)</script>" in page.pre
    assert "Title <i>with</i> tags" in page.plain_text
    _assert_self_contained(text, page)


def test_report_shows_hostile_names_as_text(tmp_path: Path) -> None:
    """Names from the book and the scenario with markup in them are text in the page, in cells and attributes alike."""
    import helpers

    name = "<script>alert(1)</script>"
    description = 'Rates < 5% & "quoted" \'single\' <b>bold</b>'
    industry, region, layer = 'Food & "Drink" <Co>', "East & 'West' <i>x</i>", 'fund "A" & <b>B</b>'
    book = helpers.book(60, pd_=0.03, term=12, amortization="annuity", rate=0.1,
                        industries=(industry, "retail"), regions=(region, "north"))
    shock = {"start": 1, "trough": -0.3, "trough_month": 3, "recovery_month": 9}
    scenario = stresslab.Scenario.from_dict({
        "name": name, "description": description, "horizon_months": 12,
        "shocks": {"industry": {industry: shock}, "region": {region: shock}},
        "layers": [{"name": layer, "kind": "quota_share", "share": 0.5, "capacity": 5.0}],
    })
    ds = stresslab.simulate(book, scenario, n_paths=50, seed=1)
    _, text, page = _write(tmp_path, ds, portfolio=book)

    assert not page.all("script") and not page.all("b") and not page.all("i")  # no element from the data
    assert name not in text and "<b>" not in text and "<Co>" not in text  # the source holds them escaped only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert page.title == [f"Stress test report: {name}"]
    assert f"Scenario {name}: {description}" in page.plain_text  # the header
    for cell in (name, description, f"industry {industry}, region {region}", layer):  # the scenario table
        assert cell in page.td, cell
    assert page.td.count(industry) >= 2 and page.td.count(region) >= 2  # the book and contributions tables
    assert page.td.count(layer) >= 2  # who bears the loss, layers
    assert f"Capacity left of layer {layer}" in [a["alt"] for a in page.all("img")]  # in an attribute
    resolved = json.loads(page.pre[-1])
    assert resolved["name"] == name and resolved["description"] == description
    assert list(resolved["shocks"]["industry"]) == [industry] and resolved["layers"][0]["name"] == layer
    _images(page)
    _assert_self_contained(text, page)


def test_report_template_escapes_and_refuses_missing_values(tmp_path: Path, plain: xr.Dataset) -> None:
    template, css = report_html._template()
    env = template.environment
    assert env.from_string("<td>{{ v }}</td>").render(v="<b>&") == "<td>&lt;b&gt;&amp;</td>"  # autoescape
    # a value a section template reads and page.py does not give is an error, not an empty cell
    with pytest.raises(jinja2.UndefinedError, match="rows"):
        env.get_template("sections/provenance.html.j2").render(section=SimpleNamespace(id="provenance", heading="P"))
    with pytest.raises(jinja2.UndefinedError):
        template.render(css=css, title="t", sections=[])
    # the style sheet is report.css, inlined
    _, text, _ = _write(tmp_path, plain)
    assert re.findall(r"<style>(.*?)</style>", text, flags=re.S)[0].strip() == css.strip()
    assert css == (ROOT / "stresslab" / "report" / "report.css").read_text(encoding="utf-8")


def test_report_from_a_wheel_has_its_template(tmp_path: Path, plain: xr.Dataset) -> None:
    """A non-editable install (the wheel, unpacked by pip) holds the template and the CSS, and writes the report."""
    src = tmp_path / "src"  # a copy: pip builds in the source tree (build/, *.egg-info)
    shutil.copytree(ROOT / "stresslab", src / "stresslab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                            "--wheel-dir", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=180, check=False)
    # bdist_wheel is part of setuptools from 70.1 (the test extra asks for it): else pip install -e ".[test]"
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("stresslab-*.whl")
    package_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "stresslab" / "report").rglob("*")
                     if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert "stresslab/report/report.css" in package_files and "stresslab/report/templates/report.html.j2" in package_files
    missing = package_files - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data] in pyproject.toml): {sorted(missing)}"

    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=180, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    run, page_path = tmp_path / "run.nc", tmp_path / "report.html"
    stresslab.save_results(plain, run)
    code = ("import sys, stresslab\n"
            "from stresslab.report.html import write_report\n"
            "assert stresslab.__file__.startswith(sys.argv[1]), stresslab.__file__\n"
            "write_report(stresslab.load_results(sys.argv[2]), sys.argv[3])\n")
    env = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    rendered = subprocess.run([sys.executable, "-c", code, str(site), str(run), str(page_path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    text = page_path.read_text(encoding="utf-8")
    page = Page(text)
    assert _section_ids(page) == ["scenario", "book", "headline", "plots", "contributions", "ifrs9", "provenance"]
    assert "font-family" in text and len(_images(page)) == 6  # the five of the loss, and the stage mix
    _assert_self_contained(text, page)


def test_report_draws_no_pyplot_figures_and_leaves_none_open(tmp_path: Path, plain: xr.Dataset) -> None:
    before = plt.get_fignums()
    _write(tmp_path, plain)
    assert plt.get_fignums() == before


def test_report_notes_a_plot_the_data_do_not_allow(tmp_path: Path) -> None:
    import helpers

    book = helpers.book(20, pd_=0.0, term=3, amortization="annuity", rate=0.1)
    ds = stresslab.simulate(book, helpers.scenario(horizon=3), n_paths=20, seed=1)
    _, text, page = _write(tmp_path, ds, portfolio=book)
    assert "Exceedance curve of the gross loss: not drawn (exceedance_curve: no path loss is exceeded" in page.plain_text
    assert "gross loss, months 1–3" in page.plain_text and "months 1–12" not in page.plain_text  # one window
    _images(page)


# ------------------------------------------------------------------ errors and atomicity
def test_report_errors(tmp_path: Path, plain: xr.Dataset, book) -> None:
    target = tmp_path / "r.html"
    with pytest.raises(StresslabError, match="another book"):
        write_report(plain, target, portfolio=stresslab.synthetic_portfolio(50, seed=9))
    stacked = xr.concat([plain.expand_dims(scenario=["a"]), plain.expand_dims(scenario=["b"])], dim="scenario")
    with pytest.raises(StresslabError, match="ds.sel"):
        write_report(stacked, target)
    with pytest.raises(StresslabError, match="levels"):
        write_report(plain, target, levels=(0.99, 1.0))
    with pytest.raises(StresslabError, match="summary"):
        write_report(stresslab.summary(plain), target)
    with pytest.raises(StresslabError, match="does not exist"):
        write_report(plain, tmp_path / "missing" / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_report_is_written_atomically(tmp_path: Path, plain: xr.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("earlier report")
    write_report(plain, target)
    first = target.read_text(encoding="utf-8")
    assert first.startswith("<!DOCTYPE html>") and first.rstrip().endswith("</html>")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StresslabError, match="no space left on device.*unchanged"):
        write_report(plain, target)
    assert target.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left


# ------------------------------------------------------------------ in a browser
def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"headless browser test needs Chromium at {CHROMIUM} (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(tmp_path: Path, layered: xr.Dataset, book) -> None:
    path, text, page = _write(tmp_path, layered, portfolio=book)
    n_images = len(page.all("img"))
    assert n_images >= 9

    # the DOM after loading: every section and image is there, sources untouched
    dom = _chromium(["--dump-dom", path.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = Page(dom.stdout)
    assert [a["alt"] for a in loaded.all("img")] == [a["alt"] for a in page.all("img")]
    assert all(str(a["src"]).startswith(DATA_PNG) for a in loaded.all("img"))
    assert _section_ids(loaded) == _section_ids(page)

    # the screenshot: content all the way down, and the figures decoded (their colours are on screen)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    result = _chromium(["--screenshot=" + str(shot), "--window-size=1000,3000", "--hide-scrollbars", path.as_uri()],
                       tmp_path / "profile-shot")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    shutil.copyfile(path, ARTIFACTS / "report.html")
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape == (3000, 1000, 3)
    ink = (image < 235).any(axis=2)  # pixels that are not (near) white
    bands = ink.reshape(6, 500, 1000).mean(axis=(1, 2))
    assert (bands > 0.03).sum() >= 5, bands  # text, tables and figures in (nearly) every band, not a blank page
    assert ink.mean() > 0.05, ink.mean()
    # the loss histogram's bars (#9ecae1) are drawn only if the embedded PNG decoded
    histogram_blue = (np.abs(image - np.array([0x9E, 0xCA, 0xE1])).max(axis=2) <= 6).sum()
    assert histogram_blue > 2_000, histogram_blue
