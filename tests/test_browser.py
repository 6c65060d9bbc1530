"""The app in a real browser: Debian's Chromium driven by Playwright (install it with `.ci/browser.sh`).

Pick an example, caption it, click a word and see its map change, ask a question, save a correction with
markup in it, find it in the Dataset tab, download the CSV; hostile uploads and questions give a message and
the page keeps working. Screenshots of every step go to a temporary folder (printed; MMDEMO_SCREENSHOTS
chooses it).
"""
from __future__ import annotations

import csv
import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import (BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS, TRAINED, example, playwright_or_skip,
                     served_app)

pytestmark = pytest.mark.browser

ARGS, TIMEOUT_MS = CHROMIUM_ARGS, BROWSER_TIMEOUT_MS
sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("MMDEMO_SCREENSHOTS") or tempfile.mkdtemp(prefix="mmdemo-browser-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_app(tmp_path_factory.mktemp("browser-data")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url, shots, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.dialogs = []                                   # any alert() or confirm() would mean script ran
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#caption-button")
    yield page
    page.screenshot(path=str(shots / f"{request.node.name}-last.png"), full_page=True)
    context.close()


def snap(page, shots, name):
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def pick_example(page, i=1):
    row = example(i)
    page.get_by_text(f"{row['caption']} — {row['question']}"[:30]).first.click()
    page.wait_for_selector("#image img")
    return row


def caption(page):
    page.click("#caption-button")
    page.wait_for_selector("#caption-tokens .token")
    page.wait_for_function("document.querySelector('#caption-text textarea').value.length > 0")
    return page.input_value("#caption-text textarea")


def map_src(page, selector="#caption-map img"):
    return page.get_attribute(selector, "src")


def wait_src_change(page, selector, old):
    page.wait_for_function(
        "([sel, old]) => { const el = document.querySelector(sel); return el && el.getAttribute('src') !== old; }",
        arg=[selector, old])
    return map_src(page, selector)


def error_toast(page, text):
    """The error message Gradio shows (a toast), containing `text`."""
    toast = page.locator(".toast-body").filter(has_text=text)
    toast.first.wait_for()
    return toast.first.inner_text()


def test_caption_a_token_map_and_ask(page, shots):
    row = pick_example(page, 1)
    snap(page, shots, "01-example")
    text = caption(page)
    if TRAINED:
        assert text == row["caption"]
    tokens = page.locator("#caption-tokens .token")
    assert tokens.count() == len(text.split())
    page.wait_for_selector("#caption-map img")
    first = map_src(page)
    snap(page, shots, "02-caption")
    tokens.nth(1).click()                                  # a word → its map
    page.wait_for_function("document.querySelector('#caption-token input').value.startsWith('1:')")
    second = wait_src_change(page, "#caption-map img", first)
    assert second != first
    snap(page, shots, "03-token-map")
    method = page.input_value("#caption-method input")
    assert "(" in method and "s)" in method              # the picker says how long a map of that method took

    page.click("#caption-sheet-button")                 # every word's map, streamed; the status counts them
    page.wait_for_function(f"document.querySelectorAll('#caption-sheet img').length === {tokens.count()}")
    page.wait_for_function("document.querySelector('#caption-sheet-status').innerText.includes("
                           f"'all {tokens.count()} of {tokens.count()} tokens')")
    snap(page, shots, "03b-every-word")

    page.get_by_role("tab", name="Ask").click()
    assert page.input_value("#question textarea") == row["question"]     # the example filled it
    page.click("#ask-button")
    page.wait_for_selector("#ask-answer h2")
    answer = page.inner_text("#ask-answer h2")
    if TRAINED:
        assert answer == row["answer"]
    page.wait_for_selector("#ask-map img")
    snap(page, shots, "04-ask")
    assert not page.dialogs


def test_correct_find_in_dataset_and_download(page, shots, tmp_path):
    pick_example(page, 2)
    text = caption(page)
    page.get_by_role("tab", name="Correct").click()
    page.wait_for_function("document.querySelector('#correct-output textarea').value.length > 0")
    assert page.input_value("#correct-output textarea") == text
    marker = uuid.uuid4().hex[:8]
    hostile = f"a blue circle {marker} <script>window.__pwned = 1</script><img src=x onerror=alert(1)>"
    # the caption also pre-fills the correction box; type only once that has happened
    page.wait_for_function("document.querySelector('#correct-text textarea').value === "
                           "document.querySelector('#correct-output textarea').value")
    for _ in range(5):                     # a late pre-fill (state change) may still land: type until it stays
        page.fill("#correct-text textarea", hostile)
        time.sleep(0.5)
        if page.input_value("#correct-text textarea") == hostile:
            break
    page.fill("#correct-annotator input", "browser-test")
    assert page.input_value("#correct-text textarea") == hostile
    page.click("#correct-save")
    page.wait_for_function("m => document.querySelector('#correct-diff').innerText.includes(m)", arg=marker)
    assert "1" in page.inner_text("#correct-count")
    assert "<script>" in page.inner_text("#correct-diff")          # shown as text
    snap(page, shots, "05-correct")

    page.get_by_role("tab", name="Dataset").click()
    page.wait_for_selector(f"#dataset-table :text('{marker}')", state="attached")
    table_text = page.evaluate("document.querySelector('#dataset-table').textContent")
    assert f"{marker} <script>window.__pwned = 1</script>" in table_text   # shown as text, not as markup
    assert page.locator("#dataset-table script, #dataset-table img[src=x], #correct-diff script").count() == 0
    snap(page, shots, "06-dataset")
    page.click("#dataset-export")                                    # CSV is the default format
    link = page.locator("#dataset-download a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    path = tmp_path / "export.csv"
    info.value.save_as(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if marker in r["corrected"]]
    assert len(rows) == 1
    assert rows[0]["corrected"] == hostile and rows[0]["annotator"] == "browser-test"
    assert rows[0]["model_output"] == text and rows[0]["task"] == "caption"
    assert page.evaluate("window.__pwned") is None
    assert not page.dialogs


def test_review_queue(page, shots):
    page.get_by_role("tab", name="Correct").click()
    page.get_by_text("Review queue: caption and correct a folder of images").click()
    page.set_input_files("#correct-queue-files input[type=file]", [example(3)["path"], example(6)["path"]])
    page.wait_for_function("document.body.innerText.includes('2 image(s) in the queue')")
    for left in ("1 image(s) left", "That was the last image"):
        page.click("#correct-next")
        page.wait_for_function(f"document.body.innerText.includes({left!r})")
        page.wait_for_function("document.querySelector('#correct-output textarea').value.length > 0")
    assert page.locator("#image img").count() == 1
    if TRAINED:
        assert page.input_value("#correct-output textarea") == example(6)["caption"]
    snap(page, shots, "09-review-queue")
    page.click("#correct-next")
    error_toast(page, "the queue is empty")


def test_hostile_input_in_the_page(page, shots, tmp_path):
    from helpers import huge_png

    bad = tmp_path / "notes.png"
    bad.write_text("not an image, whatever the name says")
    page.set_input_files("#image input[type=file]", str(bad))
    page.click("#caption-button")
    assert "not an image" in error_toast(page, "not an image")
    snap(page, shots, "07-not-an-image")

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(huge_png())
    page.set_input_files("#image input[type=file]", str(bomb))
    page.click("#caption-button")
    assert "20000×20000" in error_toast(page, "20000×20000")

    pick_example(page, 1)
    page.get_by_role("tab", name="Ask").click()
    page.fill("#question textarea", "")
    page.click("#ask-button")
    error_toast(page, "question is empty")
    page.fill("#question textarea", "x" * 10_000)
    page.click("#ask-button")
    error_toast(page, "10,000 characters")
    snap(page, shots, "08-long-question")

    page.fill("#question textarea", "how many objects are there?")     # still serving
    page.click("#ask-button")
    page.wait_for_selector("#ask-answer h2")
    assert page.inner_text("#ask-answer h2").strip()
    assert not page.dialogs


def test_readme_screenshots(page, shots):
    """The README's two screenshots (written to assets/screenshots/ when MMDEMO_README_SHOTS=1)."""
    if os.environ.get("MMDEMO_README_SHOTS") != "1":
        pytest.skip("set MMDEMO_README_SHOTS=1 (with the trained weights) to refresh assets/screenshots/")
    folder = Path(__file__).resolve().parent.parent / "assets" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1400})
    pick_example(page, 4)
    caption(page)
    page.locator("#caption-tokens .token").nth(2).click()
    page.wait_for_function("document.querySelector('#caption-token input').value.startsWith('2:')")
    time.sleep(1.5)
    page.screenshot(path=str(folder / "caption.png"), full_page=False)
    page.get_by_role("tab", name="Ask").click()
    page.click("#ask-button")
    page.wait_for_selector("#ask-map img")
    page.wait_for_selector("#ask-words .token")
    page.wait_for_selector("#ask-modality img")
    time.sleep(1.5)
    page.screenshot(path=str(folder / "ask.png"), full_page=False)
