"""The explorer in a real browser: ``python -m vaekit.explore`` on a free loopback port, driven
by headless Chromium through Selenium (Debian's chromium + chromium-driver, installed by
``scripts/get-chromium.sh``).

It moves the temperature slider and a latent slider and checks that the pictures changed (in
pixels, as drawn), uploads a colour image to a grayscale model and a file that is no image and
checks the messages, checks that the page asked nothing of any other host, and saves a
screenshot of every tab (``$VAEKIT_TEST_ARTEFACTS/explorer`` or a pytest tmp folder; the path
is printed). The server is always stopped. Well under 2 minutes on 2 busy cores.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from explore_utils import make_run, metrics, tiny_vae
from PIL import Image
from trainer_utils import write_images

from vaekit.explore import _browser as B

pytestmark = [
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(B.missing() is not None, reason=str(B.missing())),
]
pytest.importorskip("gradio")

TABS = ("Samples", "Latent sliders", "Interpolation", "Reconstruction", "Compare runs")
CHANGED = 2.0  # mean |pixel difference| (0-255) that counts as "the picture changed"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore-browser")
    history = [(s, "train", 0.7 - s / 1000, 20 + s / 10) for s in (10, 20, 30)]
    a = make_run(
        root / "runs" / "flat-grey", tiny_vae(), data="/gone",
        metrics=metrics(20.0, 9.0), history=[*history, (30, "val", 0.66, 22.0)],
    )  # fmt: skip
    b = make_run(
        root / "runs" / "spatial-grey", tiny_vae(latent="spatial", seed=1), data="/gone",
        metrics=metrics(22.0, 11.0), history=[(s, t, r + 0.05, k) for s, t, r, k in history],
    )  # fmt: skip
    images = write_images(root / "images", 6, (16, 16))
    colour = root / "colour.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        colour
    )
    text = root / "not-an-image.png"
    text.write_text("this is text, not a picture")
    return {"runs": [a, b], "images": images, "colour": colour, "text": text, "root": root}


@pytest.fixture(scope="module")
def server(files, request):
    port = B.free_port()
    log = files["root"] / "server.log"
    args = [
        *files["runs"],
        files["root"] / "no-such-run",
        "--images",
        files["images"],
        "--threads",
        "1",
    ]
    tmp = files["root"] / "tmp"  # the explorer's own picture folder goes in here
    tmp.mkdir()
    proc = B.start_server(args, port, timeout=90, log=log, env={"TMPDIR": str(tmp)})
    request.addfinalizer(lambda: B.stop_server(proc))
    yield port, proc, log


@pytest.fixture(scope="module")
def browser(request):
    driver = B.chromium(1280, 1000)
    request.addfinalizer(driver.quit)
    return driver


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    env = os.environ.get("VAEKIT_TEST_ARTEFACTS")
    folder = Path(env) / "explorer" if env else tmp_path_factory.mktemp("explorer-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_explorer_in_chromium(files, server, browser, artefacts, capsys):
    from selenium.webdriver.common.keys import Keys

    port, proc, log = server
    d = browser
    start = time.monotonic()
    d.get(f"http://127.0.0.1:{port}/")
    shots = {}

    # samples: the temperature slider re-samples
    src = B.wait_image(d, "samples-image", timeout=60)
    before = B.pixels(d, "samples-image")
    assert "no-such-run" in B.text(d, "open-message")  # a bad path is a message in the page
    B.press(d, "temperature", Keys.HOME)  # temperature 1 -> 0: every sample the same
    B.wait_image(d, "samples-image", other_than=src)
    assert B.difference(before, B.pixels(d, "samples-image")) > CHANGED
    shots["Samples"] = B.screenshot(d, artefacts / "explorer-samples.png")

    # latent sliders: moving one re-decodes; a few moves timed end to end
    B.open_tab(d, "Latent sliders")
    src = B.wait_image(d, "latent-image")
    before = B.pixels(d, "latent-image")
    times = []
    for key in (Keys.END, Keys.HOME) * 3:
        t0 = time.perf_counter()
        B.press(d, "latent-slider-0", key)
        src = B.wait_image(d, "latent-image", other_than=src)
        times.append(time.perf_counter() - t0)
        if len(times) == 1:
            assert B.difference(before, B.pixels(d, "latent-image")) > CHANGED
    B.element(d, "traversal-button").click()
    B.wait_image(d, "traversal-image")
    shots["Latent sliders"] = B.screenshot(d, artefacts / "explorer-latent.png")

    # bad uploads: messages in the page, the server lives on
    B.upload(d, "latent-upload", files["colour"])
    B.wait_for(lambda: "wrong channel count" in B.text(d, "latent-message"), 30, "the message")
    B.open_tab(d, "Reconstruction")
    B.wait_image(d, "recon-image")
    B.upload(d, "recon-upload", files["text"])
    B.wait_for(lambda: "is not an image" in B.text(d, "recon-message"), 30, "the message")
    shots["Reconstruction"] = B.screenshot(d, artefacts / "explorer-reconstruction.png")

    B.open_tab(d, "Interpolation")
    B.wait_image(d, "interp-image")
    shots["Interpolation"] = B.screenshot(d, artefacts / "explorer-interpolation.png")
    B.open_tab(d, "Compare runs")
    B.wait_image(d, "compare-curves")
    B.wait_image(d, "compare-samples-1")
    assert "✓" in B.text(d, "compare-table")
    shots["Compare runs"] = B.screenshot(d, artefacts / "explorer-compare.png")

    assert proc.poll() is None, log.read_text()  # still serving
    assert B.external(B.requested_urls(d), port) == []  # offline: nothing but this server
    assert set(shots) == set(TABS) and all(p.stat().st_size > 0 for p in shots.values())
    with capsys.disabled():
        print(
            f"\n[explore] screenshots in {artefacts}; latent slider round trip in the browser: "
            f"median {statistics.median(times) * 1000:.0f} ms over {len(times)} moves; "
            f"test body {time.monotonic() - start:.0f} s"
        )


def test_rendered_pictures_stay_in_the_explorers_folder(files, server, browser):
    """Gradio's files go to <TMPDIR>/vaekit-explore-*, not the shared <tmp>/gradio, and the
    folder is gone once the explorer stops (SIGTERM, as `kill` sends)."""
    port, proc, log = server
    browser.get(f"http://127.0.0.1:{port}/")
    B.wait_image(browser, "samples-image", timeout=60)  # a rendered picture
    deadline = time.monotonic() + 60  # Gradio may write the file after the page shows it
    while not (found := list((files["root"] / "tmp").glob("vaekit-explore-*"))):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    (own,) = found
    assert f"rendered pictures go to {own} (removed when the explorer stops)" in log.read_text()
    while not any(p.is_file() for p in own.rglob("*")):
        assert time.monotonic() < deadline, "no rendered picture in the folder"
        time.sleep(0.5)
    assert not (files["root"] / "tmp" / "gradio").exists()
    assert (own.stat().st_mode & 0o777) == 0o700  # this user's only
    B.stop_server(proc)
    assert proc.returncode == 0, log.read_text()
    assert not own.exists()


def test_quitting_the_browser_removes_its_profile(tmp_path):
    driver = B.chromium(320, 240)
    profile = Path(driver.capabilities["chrome"]["userDataDir"])
    assert profile.is_dir() and profile.parent == tmp_path  # tempfile's folder for this test
    driver.quit()
    assert not profile.exists()
