"""Specification of the page in a real browser (Playwright driving Debian's chromium) against a live
``restyle serve`` that needs a token: the page asks for the token once, a photo and a painting are
uploaded, the live preview changes as the job runs, the PNG downloads; the layout fits a phone.

``RESTYLE_UPDATE_SCREENSHOT=1`` also runs a larger job and writes the page's screenshot to
docs/img/server.png (otherwise the screenshot goes to the test's temporary folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from server_helpers import CHROMIUM, EXAMPLES, LiveServer, wait_for
from server_helpers import CHROMIUM_ARGS as ARGS

from restyle import api

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "server.png"
UPDATE = os.environ.get("RESTYLE_UPDATE_SCREENSHOT") == "1"
TOKEN = "page-test-token"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/test.sh installs Debian's)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ["RESTYLE_TOKEN"] = TOKEN
    try:
        live = LiveServer(tmp_path_factory.mktemp("data"), "--token", TOKEN)
    finally:
        del os.environ["RESTYLE_TOKEN"]
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def small_copy(name: str, longest: int, path: Path) -> Path:
    from PIL import Image

    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest))
        img.save(path)
    return path


def start_long_job(server, browser, tmp_path: Path, **page_options):
    """A page signed in with the token that has started a 64 px job of 1000 iterations; (page, errors)."""
    page = browser.new_page(viewport={"width": 1280, "height": 860}, **page_options)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    page.set_input_files("#content-file", str(small_copy("chelsea.jpg", 128, tmp_path / "cat.png")))
    page.set_input_files("#style-file", str(small_copy("starry_night.jpg", 128, tmp_path / "starry.png")))
    page.eval_on_selector("#size", "s => s.add(new Option('64 px', '64', true, true))")
    page.uncheck("#auto-stop")
    page.eval_on_selector("#iterations", "e => { e.value = 1000; e.dispatchEvent(new Event('input')) }")
    assert page.locator("#finish").is_hidden()  # nothing to finish yet
    page.click("#submit")
    sync_api.expect(page.locator("#status-line")).to_contain_text("Iteration", timeout=120_000)
    return page, errors


def test_a_photo_is_uploaded_its_preview_changes_live_and_the_png_downloads(server, browser, tmp_path):
    size, iterations = (256, 60) if UPDATE else (64, 10)
    photo = small_copy("chelsea.jpg", 2 * size, tmp_path / "my cat.png")
    painting = small_copy("starry_night.jpg", 2 * size, tmp_path / "starry.png")
    page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.fill("#token-input", TOKEN)  # every API call needs it: the page asks once
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready]")  # options, examples and gallery loaded
    assert page.locator("#content-examples button").count() >= 8  # the bundled examples' thumbnails
    page.set_input_files("#content-file", str(photo))
    page.set_input_files("#style-file", str(painting))
    assert page.locator("#content-chosen .thumb").count() == 1 and page.locator("#style-chosen .thumb").count() == 1
    page.eval_on_selector("#size", f"s => s.add(new Option('{size} px', '{size}', true, true))")
    assert page.is_checked("#auto-stop") and page.text_content("#iterations-out") == "auto"  # the default
    page.uncheck("#auto-stop")  # a fixed count instead
    page.eval_on_selector("#iterations", f"e => {{ e.value = {iterations}; e.dispatchEvent(new Event('input')) }}")
    page.evaluate("""() => {
        window.previews = [];
        new MutationObserver(() => window.previews.push(document.getElementById('preview').src))
            .observe(document.getElementById('preview'), {attributes: true, attributeFilter: ['src']});
    }""")
    page.click("#submit")
    page.wait_for_selector("#download:not([hidden])", timeout=180_000)
    previews = page.evaluate("window.previews")
    live = [p for p in previews if p.startswith("data:image/jpeg")]
    assert len(set(live)) >= 2, "the live preview should change as the job runs"
    # then the result (a locator assertion: the page's CSP forbids the eval wait_for_function polls with)
    sync_api.expect(page.locator("#preview")).to_have_attribute("src", re.compile("^blob:"), timeout=30_000)
    assert page.text_content("#status-line").startswith(f"Done: {iterations} iterations")
    assert page.input_value("#iterations") == str(iterations)
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "downloaded.png"
    download.value.save_as(saved)
    record = api.read_run_record(saved)
    assert record["config"]["size"] == size and record["config"]["iterations"] == iterations
    card = page.locator("#jobs .job").first
    assert card.locator(".st").text_content() == "done" and "my cat.png" in card.locator(".what").text_content()
    assert errors == []
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOT if UPDATE else tmp_path / "server.png"))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


def test_finish_now_makes_the_picture_shown_the_result(server, browser, tmp_path):
    page, errors = start_long_job(server, browser, tmp_path, accept_downloads=True)
    page.click("#finish")
    page.wait_for_selector("#download:not([hidden])", timeout=60_000)
    sync_api.expect(page.locator("#status-line")).to_contain_text("(finished on request)", timeout=10_000)
    assert page.locator("#finish").is_hidden() and page.locator("#cancel").is_hidden()
    page.click("#refresh")
    sync_api.expect(page.locator("#jobs .job .what").first).to_contain_text("finished on request at ")
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "finished.png"
    download.value.save_as(saved)
    record = api.read_run_record(saved)
    assert record["stop_reason"].startswith("finished on request at iteration ")
    assert record["config"]["iterations"] == 1000 and errors == []
    page.close()


def test_cancel_stops_the_running_job(server, browser, tmp_path):
    page, errors = start_long_job(server, browser, tmp_path)
    page.click("#cancel")  # POST /api/jobs/{id}/cancel
    sync_api.expect(page.locator("#status-line")).to_have_text("Cancelled.", timeout=30_000)
    assert page.locator("#cancel").is_hidden() and page.locator("#download").is_hidden() and errors == []
    page.close()


def test_a_new_painting_shows_a_labelled_universal_preview_before_the_optimisers_first(server, browser, tmp_path):
    """Any painting, never seen by the server: the first picture is the universal method's, labelled
    as such, and the optimiser's pictures (labelled with their iteration) follow it. The page's job
    waits behind another, so the page follows it before it starts (on an idle worker a 64 px job's
    universal preview can come and go before the page's event stream opens)."""
    import httpx
    import numpy as np
    from PIL import Image

    auth = {"Authorization": f"Bearer {TOKEN}"}
    blocker = httpx.post(f"{server.url}/api/jobs", headers=auth, data={
        "content": "chelsea", "style": "starry_night", "options": '{"size": 64, "iterations": 1000}'}).json()

    size = 384 if UPDATE else 64
    photo = small_copy("coffee.jpg", 2 * size, tmp_path / "cup.png")
    rng = np.random.default_rng(7)  # a painting no one has: strokes of random colour
    strokes = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    Image.fromarray(strokes).save(tmp_path / "new painting.png")
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(server.url + "/")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    page.set_input_files("#content-file", str(photo))
    page.set_input_files("#style-file", str(tmp_path / "new painting.png"))
    page.eval_on_selector("#size", f"s => s.add(new Option('{size} px', '{size}', true, true))")
    page.uncheck("#auto-stop")
    page.eval_on_selector("#iterations", "e => { e.value = 20; e.dispatchEvent(new Event('input')) }")
    page.evaluate("""() => {
        window.labels = [];
        // every text the label is given, in order, even several set within one task
        new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach((n) => window.labels.push(n.textContent))))
            .observe(document.getElementById('preview-label'), {childList: true});
    }""")
    page.click("#submit")
    sync_api.expect(page.locator("#status-line")).to_contain_text("Queued", timeout=60_000)
    httpx.post(f"{server.url}/api/jobs/{blocker['id']}/cancel", headers=auth).raise_for_status()
    wait_for(lambda: any(label.startswith("universal preview") for label in page.evaluate("window.labels")), 120,
             "the universal preview", every=0.05)  # the page's CSP forbids wait_for_function's eval
    page.screenshot(path=str(SCREENSHOT.with_name("server-universal.png") if UPDATE else tmp_path / "universal.png"))
    page.wait_for_selector("#download:not([hidden])", timeout=180_000)
    labels = [label for label in page.evaluate("window.labels") if label]
    assert labels and labels[0].startswith("universal preview"), labels
    assert any(label.startswith("iteration") for label in labels[1:]), labels
    page.close()
