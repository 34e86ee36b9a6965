"""`engine docs`: a static site that works offline. The pages hold what issue 12 lists (DAG,
schemas, statistics with histograms, versions, expectations and their results, joins and
point-in-time settings, model params, metrics per split, curves, confusion matrix, importances,
versions side by side, lineage); headless Chromium loads them with zero console errors and zero
requests leaving the machine, and the screenshots are not blank."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine import api
from tests.conftest import GOLDEN, run_engine
from tests.docs_site.chromium import Browser, distinct_colours, find_chromium
from tests.support import check_golden_file

PAGES = ("index.html", "lineage.html", "monitoring.html", "monitoring/returns_model.html", "feature_groups/customers.html", "feature_groups/purchases.html",
         "feature_views/returns.html", "models/returns_model.html", "inference/returns_api.html", "sources/customers_raw.html")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "xlink:href", "action", "poster", "data") and value:
                self.urls.append(value)


@pytest.fixture(scope="module")
def project(shop, tmp_path_factory) -> Path:
    """A copy of the applied monitored project whose model was trained again with other params (v2)."""
    import shutil

    root = tmp_path_factory.mktemp("docs") / "shop"
    shutil.copytree(shop, root)
    spec = root / "specs/shop.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("{max_iter: 200}", "{max_iter: 300, C: 0.5}"), encoding="utf-8")
    api.apply(root)
    _monitor_with_drift(root)
    return root


def _monitor_with_drift(root: Path) -> None:
    """A request log as the endpoint writes it (amounts doubled), ingested and compared, so the
    site has a monitoring report."""
    import json

    import pandas as pd

    from engine.monitor.report import run
    from engine.monitor.spool import spool_dir

    customers = pd.read_csv(root / "data/customers.csv").set_index("customer_id")
    purchases = pd.read_csv(root / "data/purchases.csv").head(120)
    folder = spool_dir(root / ".engine", "returns_api")
    folder.mkdir(parents=True)
    with open(folder / "20261203T000000000000-1-test.jsonl", "w", encoding="utf-8") as fh:
        for i, r in enumerate(purchases.itertuples()):
            c = customers.loc[r.customer_id]
            features = {"amount": r.amount * 2, "segment": c.segment, "tenure": int(c.tenure)}
            fh.write(json.dumps({"request_id": f"r{i}", "row": 0, "logged_at": "2026-12-03T00:00:00+00:00", "job": "returns_api",
                                 "model": "model:returns_model@2", "snapshot": None, "status": "ok", "prediction": int(r.amount > 25),
                                 "probabilities": {}, "features": features}) + "\n")
    assert run(root, "returns_model").drifted


@pytest.fixture(scope="module")
def site(project, tmp_path_factory) -> Path:
    """The site of ``project``, written by the CLI."""
    out = tmp_path_factory.mktemp("site")
    rc, stdout, err = run_engine("docs", str(project), "--out", str(out))
    assert rc == 0, err
    assert stdout.startswith("Wrote ") and "index.html" in stdout
    return out


def test_every_page_is_written_and_every_link_resolves_inside_the_site(site):
    for rel in PAGES:
        page = site / rel
        assert page.is_file(), rel
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            assert not re.match(r"^[a-z]+:|^//", url), f"{rel} refers outside the site: {url}"
            target = (page.parent / url.split("#")[0]).resolve()
            assert target.is_file(), f"{rel}: broken link {url}"


def test_feature_group_page_has_schema_statistics_histograms_versions_and_expectations(site):
    page = (site / "feature_groups/customers.html").read_text(encoding="utf-8")
    assert "Who buys, as the CRM knows them." in page
    for column, kind in (("customer_id", "primary key"), ("segment", "VARCHAR"), ("tenure", "BIGINT")):
        assert re.search(rf"<td>{column}</td><td>[^<]*</td><td>[^<]*</td>", page) and kind in page
    assert page.count('aria-label="histogram of') == 2  # customer_id, tenure
    assert 'aria-label="most frequent values of segment"' in page
    assert "<h2>Versions</h2>" in page and "Commits of version 1" in page
    assert "tenure between [0, 100]" in page and "segment in_set" in page and page.count(">passed<") == 2


def test_monitoring_page_shows_the_last_report(site):
    index = (site / "monitoring.html").read_text(encoding="utf-8")
    assert 'href="monitoring/returns_model.html"' in index and ">drift<" in index
    page = (site / "monitoring/returns_model.html").read_text(encoding="utf-8")
    assert "amount: psi" in page and 'aria-label="amount: training vs serving"' in page and "model:returns_model@2" in page


def test_the_site_is_written_while_an_apply_holds_the_project_lock(project, tmp_path):
    """Read-only stores (engine.session.reading): the site never waits for an apply (RELIABILITY I6)."""
    from engine.docs_site.site import write_site
    from engine.state.workspace import ProjectLock, Workspace

    with ProjectLock(Workspace.for_project(project), timeout_s=0):
        site = write_site(project, tmp_path / "site")
    assert (site.root / "models/returns_model.html").is_file()


def test_view_page_has_joins_and_point_in_time_settings(site):
    page = (site / "feature_views/returns.html").read_text(encoding="utf-8")
    assert "Joins (point-in-time)" in page and "<td>customers</td><td>customer_id</td>" in page
    assert "largest event time ≤ t" in page and "<td>segment</td><td>one_hot_encoder</td>" in page


def test_model_page_has_params_metrics_curves_confusion_importances(site):
    page = (site / "models/returns_model.html").read_text(encoding="utf-8")
    assert "Versions side by side" in page and "<th>v1</th><th>v2</th>" in page
    assert re.search(r"<td>param max_iter</td><td class=\"num\">200</td><td class=\"num\">300</td>", page)
    assert re.search(r"<td>param C</td><td class=\"num\"></td><td class=\"num\">0.5</td>", page)
    assert "test roc_auc" in page
    for chart in ("ROC curve", "precision-recall curve", "confusion matrix", "feature importances"):
        assert f'aria-label="{chart}"' in page, chart
    assert "amount" in page and "segment=vip" in page  # importances name the model inputs


def test_dag_links_every_object_and_is_stable(site, project):
    from engine.docs_site.dag import render
    from engine.docs_site.site import page_of, project_dag

    graph = project_dag(api.validate(project))
    assert ("model:returns_model", "inference:returns_api") in graph.edges
    index = (site / "index.html").read_text(encoding="utf-8")
    for node in graph.nodes:
        assert f'href="{page_of(node)}"' in index, node
    check_golden_file(GOLDEN / "docs_site" / "shop_dag.svg", render(graph, page_of) + "\n")


def test_docs_before_any_apply_still_writes_the_spec_pages(tmp_path):
    from tests.monitor.conftest import make_project

    root = make_project(tmp_path / "fresh")
    rc, _, err = run_engine("docs", str(root), "--out", str(tmp_path / "site"))
    assert rc == 0, err
    page = (tmp_path / "site/feature_groups/customers.html").read_text(encoding="utf-8")
    assert "has not been published yet" in page


def test_out_must_be_a_folder(shop, tmp_path):
    (tmp_path / "taken").write_text("x", encoding="utf-8")
    rc, _, err = run_engine("docs", str(shop), "--out", str(tmp_path / "taken"))
    assert rc == 2 and "is not a folder" in err and "Traceback" not in err


def test_bad_project_is_a_spec_error_not_a_traceback(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/x.yaml").write_text("spec_version: 1\nproject: x\nfeature_groups: {a: {primary_keys: [id]}}\n", encoding="utf-8")
    rc, _, err = run_engine("docs", str(tmp_path), "--out", str(tmp_path / "site"))
    assert rc == 3 and "x.yaml:3:" in err and "Traceback" not in err


CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/setup.d/chromium.sh does it in CI)")
def test_pages_render_in_headless_chromium_offline_without_errors(site):
    browser = Browser(CHROMIUM)
    try:
        for rel in ("index.html", "feature_groups/customers.html", "feature_views/returns.html", "models/returns_model.html", "lineage.html",
                    "monitoring.html", "monitoring/returns_model.html"):
            visit = browser.visit((site / rel).as_uri())
            assert visit.errors == [], f"{rel}: {visit.errors}"
            outside = [u for u in visit.requests if not u.startswith(("file://", "data:", "about:"))]
            assert outside == [], f"{rel} asked the network for {outside}"
            assert distinct_colours(visit.screenshot) > 20, f"{rel}: the screenshot is blank"
    finally:
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/setup.d/chromium.sh does it in CI)")
def test_the_browser_harness_sees_errors_requests_and_blank_pages(tmp_path):
    """The checks above can fail: a console error, a request for a remote resource (to a closed
    loopback port, so nothing leaves the machine) and a blank page are all seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>', encoding="utf-8")
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>", encoding="utf-8")
    browser = Browser(CHROMIUM)
    try:
        visit = browser.visit(bad.as_uri())
        assert any("boom" in e for e in visit.errors)
        assert "http://127.0.0.1:9/x.png" in visit.requests
        assert distinct_colours(browser.visit(blank.as_uri()).screenshot) == 1
    finally:
        browser.close()
