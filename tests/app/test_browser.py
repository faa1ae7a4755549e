"""nafft serve in a real browser: headless Chromium (Debian's chromium and chromium-driver) uses the page as a person
would. CI=true runs these tests (.ci/run installs the browser); elsewhere they skip when Chromium is missing.

`NAFFT_SCREENSHOT=docs/images/serve.jpg pytest tests/app/test_browser.py` also saves the screenshot of the page
after a result that README shows.
"""

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nafft.cli import main
from nafft.data.io import decode_image, write_image
from tests.app.conftest import request
from tests.app.photos import shaken_photo
from tests.app.webdriver import Browser, find_browser, wait_for_file

NEWEST_CARD = "return document.querySelector('#jobs .job')"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    found = find_browser()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true, but chromium or chromedriver is missing (.ci/run installs them with apt-get)")
        pytest.skip("no headless Chromium here (apt-get install chromium chromium-driver to run the browser tests; "
                    "CI=true runs them)")
    downloads = tmp_path_factory.mktemp("downloads")
    driver = Browser(*found, downloads)
    yield driver, downloads
    driver.close()


@pytest.fixture(scope="module")
def page(browser, app):
    driver, downloads = browser
    base, _ = app
    driver.get(base + "/")
    driver.wait_for("return document.querySelectorAll('#model option').length >= 2", 30, "the model picker")
    return driver, downloads, base


def choose(driver: Browser, model: str, strength: float | None) -> None:
    """Pick a model and a strength (None: the automatic strength, for a model with a guard)."""
    driver.run("const m = document.querySelector('#model'); m.value = arguments[0];"
               "m.dispatchEvent(new Event('change'));"
               "const a = document.querySelector('#auto'); a.checked = arguments[1] === null;"
               "a.dispatchEvent(new Event('change'));"
               "const s = document.querySelector('#strength'); if (arguments[1] !== null) s.value = arguments[1];"
               "s.dispatchEvent(new Event('input'));", model, strength)


def submit(driver: Browser, *paths: Path) -> int:
    """Choose files in the page's file input; returns how many job cards there were before."""
    before = driver.run("return document.querySelectorAll('#jobs .job').length")
    driver.send_keys(driver.find("#files"), "\n".join(str(p) for p in paths))
    return before


def finished_cards(driver: Browser, count: int, timeout: float = 120) -> list[dict]:
    """State, status text and download link of the newest `count` cards once none is uploading, queued or running."""
    script = (f"const cards = [...document.querySelectorAll('#jobs .job')].slice(0, {count});"
              "if (cards.length < arguments[0] || cards.some(c => !['done', 'error'].includes(c.dataset.state))) "
              "return null;"
              "return cards.map(c => ({state: c.dataset.state, status: c.querySelector('.job-status').textContent,"
              "  settings: c.querySelector('.job-settings').textContent, href: c.querySelector('.download').href,"
              "  download: c.querySelector('.download').download,"
              "  images: [...c.querySelectorAll('.compare img')].every(i => i.complete && i.naturalWidth > 0)}));")
    return driver.wait_for(script.replace("arguments[0]", str(count)), timeout, f"{count} finished job(s)")


def test_a_photograph_is_deblurred_and_the_download_equals_nafft_deblur(page, tmp_path):
    driver, downloads, _ = page
    photo = tmp_path / "cat.png"
    write_image(photo, shaken_photo(272, 400))
    choose(driver, "nafft-photo", None)  # the default: the guard chooses the strength
    assert driver.run("return document.querySelector('#auto-ceiling').textContent") == " (at most 0.75)"
    submit(driver, photo)
    [card] = finished_cards(driver, 1)
    assert card["state"] == "done" and card["status"].startswith("done in") and card["images"], card
    assert re.fullmatch(r"nafft-photo, strength [01]\.\d\d \(automatic\)", card["settings"]), card["settings"]
    assert card["download"] == "cat-deblurred.png"
    driver.wait_for("return document.querySelector('#queue-status').textContent.startsWith('queue: 0 deblurring')",
                    10, "the queue's line")
    screenshot = driver.screenshot()
    driver.click(driver.find("#jobs .job .download"))
    downloaded = wait_for_file(downloads, "cat-deblurred.png")
    assert main(["deblur", str(photo), "-o", str(tmp_path / "cli"), "--checkpoint", "nafft-photo"]) == 0
    expected, _, depth = decode_image(tmp_path / "cli" / "cat.png")
    pixels, _, downloaded_depth = decode_image(downloaded)
    assert downloaded_depth == depth == 8 and np.array_equal(pixels, expected)
    assert not np.array_equal(pixels, decode_image(photo)[0])  # the model did change it
    image = Image.open(io.BytesIO(screenshot))
    assert image.width == 1280 and image.height > 600  # the window less its (invisible) frame
    target = os.environ.get("NAFFT_SCREENSHOT")
    if target:
        image.convert("RGB").save(target, quality=88) if target.lower().endswith(".jpg") else image.save(target)


def test_several_photographs_with_another_model_and_strength(page, tmp_path, tiny_checkpoint):
    driver, _, _ = page
    rng = np.random.default_rng(7)
    photos = [tmp_path / "one.png", tmp_path / "two.jpg"]
    write_image(photos[0], rng.random((40, 56, 3)))
    write_image(photos[1], rng.random((48, 36, 3)))
    choose(driver, "tiny", 0.5)
    submit(driver, *photos)
    cards = finished_cards(driver, 2)
    assert [c["state"] for c in cards] == ["done", "done"] and all(c["settings"] == "tiny, strength 0.50"
                                                                    for c in cards)
    assert main(["deblur", *map(str, photos), "-o", str(tmp_path / "cli"), "--checkpoint", str(tiny_checkpoint),
                 "--strength", "0.5"]) == 0
    for card in cards:
        name = card["download"].replace("-deblurred", "")
        status, body, _ = request(card["href"])
        assert status == 200 and body == (tmp_path / "cli" / name).read_bytes(), name


def test_a_text_file_named_png_gets_a_message_on_the_page(page, tmp_path):
    driver, _, _ = page
    fake = tmp_path / "notes.png"
    fake.write_text("shopping list: milk, eggs\n")
    submit(driver, fake)
    [card] = finished_cards(driver, 1, timeout=30)
    assert card["state"] == "error" and card["status"] == "notes.png: not an image file Pillow can identify"


def test_an_oversized_image_is_refused_with_a_message(page, tmp_path):
    driver, _, _ = page
    big = tmp_path / "poster.png"
    write_image(big, np.random.default_rng(8).random((1100, 1000, 3)))
    submit(driver, big)
    [card] = finished_cards(driver, 1, timeout=30)
    assert card["state"] == "error"
    assert card["status"] == ("poster.png: 1000x1100 is 1.1 megapixels, over this server's limit of 1 "
                              "(nafft serve --max-megapixels)")
