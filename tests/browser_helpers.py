"""A real headless Chromium for the review tests (Debian's `chromium` + `chromium-driver`, driven by Selenium).

Import the fixtures into a test module (`from browser_helpers import chromium, driver  # noqa: F401`).
`scripts/ensure_chromium.sh` installs them with apt-get when root; otherwise the tests skip with its message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# reads the frame-number badge (lerobot_keyframes.testing.render.draw_frame_badge) off the decoded frame a
# <video> shows: drawImage into a canvas at the video's size, then the brightness at the cell centres
BADGE_JS = """
var v = arguments[0], c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
var g = c.getContext('2d', {willReadFrequently: true}); g.drawImage(v, 0, 0);
return arguments[1].map(function(p){ var d = g.getImageData(p[0], p[1], 1, 1).data;
  return 0.299 * d[0] + 0.587 * d[1] + 0.114 * d[2]; });
"""


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths; installed from Debian by scripts/ensure_chromium.sh when root."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode == 3:
        pytest.skip(f"no headless Chromium: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"scripts/ensure_chromium.sh failed: {proc.stderr}"
    return shutil.which("chromium") or "chromium", shutil.which("chromedriver") or "chromedriver"


@pytest.fixture
def driver(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1000", "--autoplay-policy=no-user-gesture-required",
                 "--allow-file-access-from-files"):  # else a file:// video taints the canvas the badge is read from
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=chromium[1]))
    drv.set_page_load_timeout(30)
    drv.downloads = downloads
    try:
        yield drv
    finally:
        drv.quit()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (and return it)."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def shown_frames(drv: Any) -> list[int]:
    """The frame number each <video> of the page shows now, read from its decoded pixels."""
    from selenium.webdriver.common.by import By

    from lerobot_keyframes.testing.render import badge_centres, read_frame_badge

    wait_for(lambda: drv.execute_script("return window.review.settled()"), what="videos to finish seeking")
    out = []
    for video in drv.find_elements(By.CSS_SELECTOR, "video.cam-video"):
        width = drv.execute_script("return arguments[0].videoWidth", video)
        out.append(read_frame_badge(drv.execute_script(BADGE_JS, video, badge_centres(width))))
    return out
