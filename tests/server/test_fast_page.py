"""Specification of the page's fast models in a real browser (Playwright driving Debian's chromium)
against a live ``restyle serve --models DIR``: the page offers the folder's model; choosing it
hides the style images and the iteration settings and shows a weight per style; the job sends the
model and the weights, and its result appears as soon as it is done (followed live, not polled).

``RESTYLE_UPDATE_SCREENSHOT=1`` writes the page's screenshot to docs/img/fast-page.png (otherwise to
the test's temporary folder); ``RESTYLE_SCREENSHOT_MODEL=FILE.pt`` shows that model (named
``paintings``) instead of the tiny random one, whose pictures are noise."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from server_helpers import CHROMIUM, CHROMIUM_ARGS, LiveServer, wait_for

from shared_helpers import tiny_fast_model

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "fast-page.png"
UPDATE = os.environ.get("RESTYLE_UPDATE_SCREENSHOT") == "1"
SHOWN = os.environ.get("RESTYLE_SCREENSHOT_MODEL")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/test.sh installs Debian's)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    if SHOWN:
        shutil.copyfile(SHOWN, models / "paintings.pt")
    else:
        tiny_fast_model(models / "paintings.pt", styles=2)
    live = LiveServer(tmp_path_factory.mktemp("data"), "--models", str(models))
    try:
        yield live
    finally:
        live.stop()


def get(server: LiveServer, path: str) -> object:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.loads(response.read())


def test_a_fast_model_is_picked_on_the_page_and_its_result_appears_at_once(server, tmp_path):
    (model,) = get(server, "/api/models")
    styles = model["styles"]
    wait_for(lambda: get(server, "/api/server")["workers"][0]["state"] == "idle", 120, "the worker")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]")
            assert page.is_visible("#fast-row") and page.is_visible("#style-drop") and page.is_visible("#auto-stop")
            page.click("#content-examples button[data-name='chelsea.jpg']")
            size = 384 if UPDATE else 64
            page.eval_on_selector("#size", f"s => s.add(new Option('{size} px', '{size}', true, true))")
            page.select_option("#fast-model", "paintings")  # the blend of its styles
            assert not page.is_visible("#style-drop") and not page.is_visible("#auto-stop")
            assert page.is_visible("#refine") and page.locator("#blend input").count() == len(styles)
            page.eval_on_selector("#blend input", "e => { e.value = 0.25; e.dispatchEvent(new Event('input')) }")
            started = time.monotonic()
            page.click("#submit")
            sync_api.expect(page.locator("#preview")).to_have_attribute("src", re.compile("^blob:"), timeout=20_000)
            shown_after = time.monotonic() - started
            assert page.text_content("#status-line").startswith("Done: fast model paintings")
            (job,) = get(server, "/api/jobs?limit=1")["jobs"]  # type: ignore[index]
            assert job["status"] == "done" and job["inputs"]["styles"] == []
            assert job["config"]["fast_model"] == "paintings"
            assert job["config"]["style_blend"] == [0.25] + [1.0] * (len(styles) - 1)
            assert shown_after < 10, f"the result took {shown_after:.1f} s to appear"
            card = page.locator("#jobs .job").first
            sync_api.expect(card.locator(".what")).to_contain_text("fast model paintings")
            page.select_option("#fast-model", f"paintings/{styles[1]}")  # one style alone: no weights
            assert page.locator("#blend input").count() == 0 and not page.is_visible("#style-drop")
            page.select_option("#fast-model", "")  # back to optimising: the style images again
            assert page.is_visible("#style-drop") and page.is_visible("#auto-stop")
            page.select_option("#fast-model", "paintings")  # the weights set before are kept
            assert page.input_value("#blend input >> nth=0") == "0.25"
            assert not page.is_visible("#download-csv")  # one pass: no loss history
            assert errors == []
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SCREENSHOT if UPDATE else tmp_path / "fast-page.png"))
        finally:
            browser.close()
