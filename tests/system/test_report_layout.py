"""The report's verdicts are in view: at 1280 px its claims table (every claim of the registry, its real
texts) fits the page, with the verdict beside its claim, and nothing scrolls sideways. Headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from actstudy.report import claim_registry as registry
from actstudy.report.claim_rules import Claim
from actstudy.report.claims import claims_table, statements_table
from actstudy.report.render import Bullets, Document, to_html
from tests.system.conftest import launch_chromium

pytestmark = pytest.mark.browser

# the longest settings and measurements a tuned quick-start-sized sweep writes
SETTING = "activation=sigmoid, depth=8, model.init=auto, model.batch_norm=False, optimizer.lr=0.1 (tuned)"
MEASURED = "0.227 [0.198, 0.251] (n=3); @end 0.209 [0.180, 0.238] (n=3)"


def _claims() -> list[Claim]:
    verdicts = ("holds", "does not hold", "cannot tell")
    return [
        Claim(g.key, g.claim, SETTING, g.literature, MEASURED, verdicts[i % 3], g.rule, statement=g.statement)
        for i, g in enumerate(registry.GROUP_CLAIMS)
    ]


def test_the_claims_table_fits_1280_px_with_its_verdicts_in_view(browser_available, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    claims = _claims()
    page_file = tmp_path / "report.html"
    doc = Document(
        "actstudy sweep layout",
        Bullets([]),
        {"Claims": [claims_table(claims)], "Statements": [statements_table(claims)]},
    )
    page_file.write_text(to_html(doc), encoding="utf-8")
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(page_file.as_uri())
            page_width = page.evaluate("document.scrollingElement.scrollWidth")
            tables = page.evaluate(
                "[...document.querySelectorAll('.table-wrap')].map(w => [w.scrollWidth, w.clientWidth])"
            )
            verdicts = page.evaluate(
                "[...document.querySelectorAll('td.verdict')].map(td => td.getBoundingClientRect().right)"
            )
        finally:
            browser.close()
    assert page_width <= 1280, f"the page scrolls sideways: {page_width} px"
    assert all(scroll <= client for scroll, client in tables), tables
    assert len(verdicts) == len(claims) and max(verdicts) <= 1280, max(verdicts)
