"""The studio page in a real headless Chromium (Playwright's Python API, the system's browser).

Find a species by typing part of its name, get 16 decoded PNGs, move the mix
slider and see the strip change, download a picture and redraw it with
``speciesgan generate --from`` to the same bytes.  Skipped, with the reason, when
the system has no Chromium (Playwright's own browser downloads are not used).
Set SPECIESGAN_STUDIO_SCREENSHOT=docs/studio.png to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from speciesgan.studio.server import LiveServer
from speciesgan.studio.service import Studio, resolve_source
from tests.helpers.studio_fixtures import SIZE, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("uvicorn", reason="the studio extra is not installed: pip install -e .[studio]")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (it is in the dev extra)"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this system (apt-get install chromium): the studio browser test "
    "drives the system's Chromium",
)
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def grid_sources(page) -> list[str]:
    return page.eval_on_selector_all("#grid img", "images => images.map(i => i.src)")


def strip_sources(page) -> list[str]:
    return page.eval_on_selector_all("#strip img", "images => images.map(i => i.src)")


def test_the_page_finds_shows_mixes_and_keeps_pictures(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    studio = Studio(resolve_source(run_dir))
    with LiveServer(studio) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            page.goto(server.url)
            sync_api.expect(page.locator("#model")).to_contain_text("6 species")

            # 1. find: type part of a name, see the suggestions with their categories, pick one
            page.locator("#search").press_sequentially("bord", delay=40)
            suggestion = page.locator("#suggestions li", has_text="Border collie")
            sync_api.expect(suggestion).to_contain_text("dog")
            sync_api.expect(page.locator("#suggestions li")).to_have_count(2)
            suggestion.click()

            # 2. see: 16 pictures, decoded by the browser, of the generator's size
            images = page.locator("#grid figure img")
            sync_api.expect(images).to_have_count(16)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#grid img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            sizes = page.eval_on_selector_all(
                "#grid img", "images => images.map(i => [i.naturalWidth, i.naturalHeight])"
            )
            assert sizes == [[SIZE, SIZE]] * 16
            sync_api.expect(page.locator("#grid figcaption").first).to_contain_text("seed 0 #0")
            first_grid = grid_sources(page)

            # more like this: the clicked picture first, then steps around it; and back
            images.nth(5).click()
            sync_api.expect(page.locator("#grid-title")).to_contain_text("more like seed 0 #5")
            sync_api.expect(page.locator("#grid figcaption").nth(1)).to_contain_text("step")
            near = grid_sources(page)
            assert near[0] == first_grid[5] and len(set(near)) == 16
            page.locator("#back").click()
            sync_api.expect(page.locator("#grid-title")).to_contain_text("Border collie, seed 0")
            page.wait_for_function(
                "first => document.querySelector('#grid img').src === first", arg=first_grid[0]
            )

            # the whole grid as a ZIP: 16 PNGs with their JSON records
            with page.expect_download() as zip_download:
                page.locator("#zip").click()
            zip_path = tmp_path / "grid.zip"
            zip_download.value.save_as(zip_path)
            with zipfile.ZipFile(zip_path) as archive:
                names = archive.namelist()
            assert len(names) == 32 and sum(n.endswith(".png") for n in names) == 16

            # 3. mix: a second species, the strip, the slider
            page.locator("#mix-search").press_sequentially("buntin", delay=40)
            page.locator("#mix-suggestions li", has_text="Painted Bunting").click()
            sync_api.expect(page.locator("#strip img")).to_have_count(8)
            before = strip_sources(page)
            ready = page.get_attribute("#strip", "data-ready")
            page.locator("#mix-slider").fill("100")
            page.wait_for_function(
                f"() => document.querySelector('#strip').dataset.ready !== '{ready}'"
            )
            after = strip_sources(page)
            assert len(after) == 8 and after != before
            sync_api.expect(page.locator("#mix-weights")).to_contain_text("Painted Bunting 100%")

            # 4. keep: download a picture and its record, redraw it from the record
            figure = page.locator("#grid figure").nth(3)
            with page.expect_download() as png_download:
                figure.locator("a.png").click()
            with page.expect_download() as json_download:
                figure.locator("a.json").click()
            png = tmp_path / png_download.value.suggested_filename
            png_download.value.save_as(png)
            record = tmp_path / json_download.value.suggested_filename
            json_download.value.save_as(record)
            assert png.name == "border-collie-seed0-3of16.png" and record.suffix == ".json"

            screenshot = tmp_path / "studio.png"
            page.screenshot(path=str(screenshot), full_page=True)
            wanted = os.environ.get("SPECIESGAN_STUDIO_SCREENSHOT")
            if wanted:
                shutil.copyfile(screenshot, wanted)
        finally:
            browser.close()
    studio.close()

    redrawn = tmp_path / "redrawn"
    command = [sys.executable, "-m", "speciesgan", "generate", "--generator",
               str(run_dir / "gan" / "generator.pt"), "--from", str(record), "--out", str(redrawn)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    assert (redrawn / png.name).read_bytes() == png.read_bytes()
