"""A campaign in a real browser: open it in the Annotate tab, Ctrl+Enter through three tasks, then a reviewer
edits one submission and restores its first version from the Review tab."""
from __future__ import annotations

import pytest

from mmdemo.store import open_store
from helpers import BROWSER_TIMEOUT_MS as TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS as ARGS, make_image, playwright_or_skip, served_app

sync_api = playwright_or_skip()
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-campaign")
    with open_store(str(folder / "corrections.db"), sync=None) as store:
        store.create_campaign("browse", model="shapes-cross", instructions="name every shape and its color")
        store.add_tasks("browse", [{"image": make_image(i, 32), "image_path": f"img-{i}.png",
                                    "model_output": f"a red circle {i}", "tokens": ["a", "red", "circle", str(i)],
                                    "token_probs": [0.9, 0.3, 0.8, 0.99]} for i in range(4)])
    return folder


@pytest.fixture(scope="module")
def app_url(data_dir):
    with served_app(data_dir, tiny=True) as url:
        yield url


@pytest.fixture
def page(app_url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.wait_for_selector("#caption-button")
        yield page
        browser.close()


def choose(page, selector, value):
    box = page.locator(f"{selector} input").first
    box.click()
    box.fill(value)
    box.press("Enter")


def text_is(page, value):
    page.wait_for_function("v => document.querySelector('#annotate-text textarea').value === v", arg=value)


def test_ctrl_enter_through_three_tasks_then_restore_a_version(page, data_dir):
    page.get_by_role("tab", name="Annotate").click()
    choose(page, "#annotate-campaign", "browse")
    page.fill("#annotate-annotator input", "ana")
    page.click("#annotate-start")
    text_is(page, "a red circle 0")
    assert "name every shape" in page.inner_text("#annotate-instructions")
    page.locator("#annotate-tokens .token").nth(1).click()            # the word "red": its map on the image
    page.wait_for_selector("#annotate-map img")
    for i in range(3):
        box = page.locator("#annotate-text textarea")
        box.fill(f"a blue circle {i}")
        page.wait_for_function("() => document.querySelector('#annotate-diff').innerText.includes('blue')")  # live
        box.press("Control+Enter")
        text_is(page, f"a red circle {i + 1}")                        # saved; the next task is up
    assert "3 of 4 tasks done" in page.inner_text("#annotate-progress")
    with open_store(str(data_dir / "corrections.db"), sync=None) as store:
        subs = store.campaign_submissions("browse")
        assert [s["corrected"] for s in subs] == [f"a blue circle {i}" for i in range(3)]
        first = subs[0]["correction_id"]

    page.get_by_role("tab", name="Review").click()
    choose(page, "#review-campaign", "browse")
    page.fill("#review-reviewer input", "rita")
    page.click("#review-load")
    page.locator("#review-table").get_by_text("a blue circle 0", exact=True).locator("visible=true").first.click()
    page.wait_for_function("id => document.querySelector('#review-correction input').value === id", arg=first)
    page.get_by_label("Edit (save my text)").check()
    page.fill("#review-text textarea", "a big blue circle 0")
    page.click("#review-apply")
    page.wait_for_function("() => document.querySelector('#review-submission').innerText.includes('big blue')")
    page.get_by_label("Restore version").check()
    page.fill("#review-version input", "1")
    page.click("#review-apply")
    page.wait_for_function("() => document.querySelector('#review-text textarea').value === 'a blue circle 0'")
    with open_store(str(data_dir / "corrections.db"), sync=None) as store:
        c = store.get(first)
        assert [v.corrected for v in c.history] == ["a blue circle 0", "a big blue circle 0", "a blue circle 0"]
        assert c.corrected == "a blue circle 0" and store.submission(first)["status"] == "approved"
