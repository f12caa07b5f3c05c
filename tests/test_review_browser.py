"""The review workbench in a real headless Chromium, on a sample dataset whose frames carry their frame number.

Every check of "which frame is on screen" reads the number back from the decoded video pixels
(`draw_frame_badge` in the sample generator, read off a canvas `drawImage` of each <video>), so a seek that
lands one frame off fails. Decisions are made by clicking and typing in the page, saved through the local
server (`make_server`, as `review --serve` runs it) or the download button, and applied with `review-apply`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import chromium, driver, shown_frames, wait_for  # noqa: F401 (fixtures)

from lerobot_keyframes.language import LanguageRow, write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.language.validator import read_dataset_annotations, validate_dataset
from lerobot_keyframes.review import ReviewConfig, build_review

LONG = "a-very-long-rephrasing-without-any-space-" * 12
MODEL = "local/tiny-qwen"


@pytest.fixture(scope="module")
def badge_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 episodes x 2 cameras x 2 s with frame badges; episode 1 has no motion rows and one very long string."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    base = tmp_path_factory.mktemp("badge")
    src = make_sample_dataset(base / "src", episodes=2, episode_seconds=2.0, frame_badge=True)
    anns = []
    for a in synthetic_annotations(src):
        if a.episode_index == 1:
            rows = tuple(r for r in a.persistent if r.style != "motion")
            rows += (LanguageRow("user", LONG, "task_aug", rows[0].timestamp),)
            a = dataclasses.replace(a, persistent=rows)
        anns.append(a)
    root = base / "annotated"
    write_language(src, anns, out=root)
    (root / "meta" / "annotation_provenance.json").write_text(json.dumps({"model_id": MODEL}))  # as annotate writes
    return root


@pytest.fixture(scope="module")
def badge_site(badge_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("badge_site") / "site"
    build_review(badge_root, out, config=ReviewConfig(workers=1))
    return out


def _open(drv, url: str) -> dict:
    drv.get(url)
    wait_for(lambda: drv.execute_script("return !!window.review && window.review.settled()"), what="page ready")
    return json.loads(drv.execute_script("return document.getElementById('episode-data').textContent"))


def _frame(drv) -> int:
    return drv.execute_script("return window.review.frame()")


def _keys(drv, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv).send_keys(*keys).perform()


def _click(drv, element) -> None:
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _subtask_frames(root: Path, episode: int) -> list[int]:
    anns, times = read_dataset_annotations(root, episodes=[episode])
    ts = times[episode]
    starts = sorted(r.timestamp for r in anns[episode].persistent if r.style == "subtask")
    return [int(np.nonzero(ts == np.float32(t))[0][0]) for t in starts]


def test_band_tick_card_and_keys_show_the_exact_frame_on_every_camera(driver, badge_site: Path,  # noqa: F811
                                                                        badge_root: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = _open(driver, (badge_site / "episodes" / "episode_000001.html").as_uri())
    n = len(data["timestamps"])
    assert len(data["cameras"]) == 2 and shown_frames(driver) == [0, 0]
    starts = _subtask_frames(badge_root, 1)
    bands = driver.find_elements(By.CSS_SELECTOR, ".subtask-band")
    assert len(bands) == len(starts) >= 3
    for k in (2, 1):
        _click(driver, bands[k])
        assert _frame(driver) == starts[k] and shown_frames(driver) == [starts[k]] * 2
    lane = driver.find_element(By.ID, "subtask-lane")
    cursor = driver.find_element(By.ID, "cursor")
    expected_x = lane.rect["x"] + lane.rect["width"] * (data["timestamps"][starts[1]] + 0.5 / data["fps"]) / data["duration"]
    assert abs(cursor.rect["x"] + 1 - expected_x) < 2
    _keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert _frame(driver) == starts[1] + 3 and shown_frames(driver) == [starts[1] + 3] * 2
    _keys(driver, Keys.ARROW_LEFT)
    assert shown_frames(driver) == [starts[1] + 2] * 2
    _keys(driver, Keys.END)
    assert _frame(driver) == n - 1 and shown_frames(driver) == [n - 1] * 2
    from selenium.webdriver.common.action_chains import ActionChains

    _keys(driver, Keys.HOME)
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ARROW_RIGHT).key_up(Keys.SHIFT).perform()
    assert _frame(driver) == 10 and shown_frames(driver) == [10, 10]

    tick = [t for t in driver.find_elements(By.CSS_SELECTOR, "a.tick.vqa") if int(t.get_attribute("data-frame")) > 0][0]
    want = int(tick.get_attribute("data-frame"))
    _click(driver, tick)
    assert want > 10 and _frame(driver) == want and shown_frames(driver) == [want, want]
    card = driver.find_element(By.ID, "vqa-0")
    _click(driver, card.find_element(By.CSS_SELECTOR, ".vqa-frame"))
    assert _frame(driver) == int(card.get_attribute("data-frame")) == 0 and shown_frames(driver) == [0, 0]

    # long strings wrap inside their cards: nothing is wider than the page
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    long_item = [li for li in driver.find_elements(By.CSS_SELECTOR, "li.task-aug") if LONG[:40] in li.text][0]
    assert long_item.rect["x"] + long_item.rect["width"] <= driver.execute_script("return window.innerWidth")
    driver.save_screenshot(str(badge_site.parent / "review_player.png"))


def _click_lane_at(drv, lane, frame: int, data: dict) -> str:
    """Click `lane` at the point of `frame` (its middle); returns the tag and class of the element clicked."""
    from selenium.webdriver.common.action_chains import ActionChains

    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", lane)
    frac = (data["timestamps"][frame] + 0.5 / data["fps"]) / data["duration"]
    width = lane.rect["width"]
    dx = round(frac * width - width / 2)
    hit = drv.execute_script("var r = arguments[0].getBoundingClientRect(), e = document.elementFromPoint("
                             "r.left + r.width / 2 + arguments[1], r.top + r.height / 2); "
                             "return e.tagName + '.' + e.className", lane, dx)
    ActionChains(drv).move_to_element_with_offset(lane, dx, 0).click().perform()
    return hit


def test_a_click_on_a_thumbnail_or_an_empty_spot_of_a_lane_seeks_there(driver, badge_site: Path) -> None:  # noqa: F811
    """Not only bands and ticks: the thumbnails and the empty parts of every lane seek to the frame under the
    pointer (the frame badge in the decoded video says which frame is shown)."""
    from selenium.webdriver.common.by import By

    data = _open(driver, (badge_site / "episodes" / "episode_000000.html").as_uri())
    n = len(data["timestamps"])
    thumbs = driver.find_elements(By.CSS_SELECTOR, ".track.thumbs")
    assert len(thumbs) == 2 and shown_frames(driver) == [0, 0]
    for lane, k in ((thumbs[0], n // 2 + 3), (thumbs[1], n // 4 + 1), (thumbs[0], n - 2)):
        hit = _click_lane_at(driver, lane, k, data)
        assert hit.startswith("IMG.thumb"), hit  # a thumbnail was clicked, not the lane behind it
        assert _frame(driver) == k and shown_frames(driver) == [k, k]
    ticks = [t for t in driver.find_elements(By.CSS_SELECTOR, ".track.seek-track:not(.thumbs)")
             if t.find_elements(By.CSS_SELECTOR, ".tick")]
    lane = ticks[0]
    tick_frames = [int(t.get_attribute("data-frame")) for t in lane.find_elements(By.CSS_SELECTOR, ".tick")]
    k = next(f for f in range(n // 3, n) if all(abs(f - t) > 4 for t in tick_frames) and f != _frame(driver))
    hit = _click_lane_at(driver, lane, k, data)
    assert "track" in hit and "tick" not in hit, hit  # an empty spot of a tick lane
    assert _frame(driver) == k and shown_frames(driver) == [k, k]
    label = driver.find_element(By.ID, "frame-label").text
    assert label.startswith(f"frame {k} / {n}")


def test_play_runs_every_camera_in_sync_and_pause_snaps_to_a_frame(driver, badge_site: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = _open(driver, (badge_site / "episodes" / "episode_000000.html").as_uri())
    cursor = driver.find_element(By.ID, "cursor")
    x0 = cursor.rect["x"]
    driver.find_element(By.ID, "play").click()
    wait_for(lambda: _frame(driver) >= 12, what="playback to pass frame 12")
    assert driver.execute_script("return window.review.playing()")
    assert cursor.rect["x"] > x0
    _keys(driver, " ")
    stopped = _frame(driver)
    assert not driver.execute_script("return window.review.playing()")
    assert 12 <= stopped < len(data["timestamps"]) and shown_frames(driver) == [stopped, stopped]
    assert driver.find_element(By.ID, "frame-label").text.startswith(f"frame {stopped} /")
    _keys(driver, Keys.ARROW_RIGHT)
    assert shown_frames(driver) == [stopped + 1] * 2


def test_index_sorts_filters_and_jumps_to_the_next_episode_needing_attention(driver, badge_site: Path,  # noqa: F811
                                                                             badge_root: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get((badge_site / "index.html").as_uri())
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.episode-row")

    def shown() -> list[str]:
        return [r.get_attribute("data-episode") for r in driver.find_elements(By.CSS_SELECTOR, "tr.episode-row")
                if r.is_displayed()]

    assert len(rows) == 2 and shown() == ["0", "1"]
    style = Select(driver.find_element(By.ID, "style-filter"))
    style.select_by_value("motion")
    assert shown() == ["0"]
    style.select_by_value("!motion")
    assert shown() == ["1"]
    style.select_by_value("")
    report = validate_dataset(badge_root).by_episode()
    status = Select(driver.find_element(By.ID, "status-filter"))
    status.select_by_value("warn")
    assert shown() == [str(e) for e in (0, 1) if (report.get(e) or {}).get("warnings")
                       and not (report.get(e) or {}).get("errors")]
    status.select_by_value("")
    n_sub = len(_subtask_frames(badge_root, 0))
    box = driver.find_element(By.ID, "min-subtasks")
    box.send_keys(str(n_sub + 1))
    assert shown() == []
    box.clear()
    box.send_keys(str(n_sub))
    assert "0" in shown()
    box.clear()
    driver.find_element(By.ID, "filter").send_keys(LONG[:30])  # the text of a row of episode 1
    assert shown() == ["1"]
    driver.find_element(By.ID, "filter").clear()
    driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
    assert shown() == ["0", "1"]
    assert driver.find_element(By.ID, "model").text == MODEL
    Select(driver.find_element(By.ID, "model-filter")).select_by_value(MODEL)
    assert shown() == ["0", "1"]
    header = driver.find_element(By.CSS_SELECTOR, "th[data-sort=episode]")
    header.click()
    header.click()  # descending
    assert shown() == ["1", "0"]
    driver.find_element(By.ID, "next-attention").click()  # the first in this order with validator issues
    wait_for(lambda: driver.current_url.endswith("episode_000001.html"), what="next episode needing attention")


LONG_MODEL = "/home/someone/checkpoints/qwen2.5-vl-7b-instruct-finetuned-on-our-robot-data/global_step_120000"

# per cell of the index table: its box, its class, and how many lines its text takes (line boxes of the cell's
# contents, grouped by their top, or by their left for vertical header text)
LAYOUT_JS = """
function lines(el){ var r = document.createRange(); r.selectNodeContents(el);
  var vertical = getComputedStyle(el.querySelector('span') || el).writingMode.indexOf('vertical') === 0;
  var xs = Array.prototype.map.call(r.getClientRects(), function(b){ return vertical ? b.left : b.top; })
    .filter(function(v, i, a){ return true; }).sort(function(a, b){ return a - b; });
  var n = 0, last = -1e9; xs.forEach(function(x){ if (x - last > 4) n++; last = x; }); return n; }
var table = document.getElementById('episodes');
return {viewport: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth,
        select: document.getElementById('model-filter').getBoundingClientRect().width,
        cells: Array.prototype.map.call(table.querySelectorAll('th, td'), function(c){ var b = c.getBoundingClientRect();
          return {tag: c.tagName, cls: c.className, col: c.cellIndex, text: c.textContent.trim(), left: b.left,
                  right: b.right, width: b.width, lines: lines(c),
                  parts: Array.prototype.map.call(c.querySelectorAll('span'), lines)}; })};
"""


@pytest.fixture(scope="module")
def wide_site(badge_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The badge dataset with a local model path as its model (as annotate records a local checkpoint)."""
    base = tmp_path_factory.mktemp("wide")
    root = base / "root"
    shutil.copytree(badge_root, root)
    (root / "meta" / "annotation_provenance.json").write_text(json.dumps({"model_id": LONG_MODEL}))
    build_review(root, base / "site", config=ReviewConfig(workers=1, videos="none", thumbs_per_camera=2))
    return base / "site"


@pytest.mark.parametrize("width", [1000, 1400])
def test_index_fits_the_window_and_no_cell_wraps_a_number(driver, wide_site: Path, width: int) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    driver.get((wide_site / "index.html").as_uri())
    driver.execute_script("localStorage.clear()")
    driver.get((wide_site / "index.html").as_uri())
    # a review of episode 0, recorded through the page's own decisions store (as the episode page does)
    driver.execute_script("""var e = Decisions.episode(0); e.status = 'approved'; e.annotations = 'x';
      e.rows = {p1: {status: 'rejected', was: {}}, p2: {status: 'rejected', was: {}}, p3: {status: 'rejected', was: {}},
                p4: {content: 'edited label', was: {}}}; Decisions.changed();""")
    shot = wide_site.parent / f"index_{width}.png"
    driver.save_screenshot(str(shot))
    layout = driver.execute_script(LAYOUT_JS)
    view = layout["viewport"]
    assert width - 20 <= view <= width and layout["scroll"] <= view  # nothing runs off the page
    cells = layout["cells"]
    assert len({c["col"] for c in cells}) >= 14
    for c in cells:
        assert c["right"] <= view + 0.5, f"column {c['col']} ({c['text'][:30]!r}) is clipped at {width} px"
        if c["tag"] == "TH" or "num" in c["cls"] or "validator" in c["cls"]:
            assert c["lines"] == 1, f"{c['text']!r} takes {c['lines']} lines at {width} px"
        for k, n in enumerate(c["parts"]):
            assert n == 1, f"part {k} of {c['text']!r} takes {n} lines at {width} px"
    tasks = [c for c in cells if c["tag"] == "TD" and "task" in c["cls"]]
    assert tasks and all(c["width"] >= 180 and c["lines"] <= 3 for c in tasks), tasks  # words, not syllables
    review = [c for c in cells if "review-cell" in c["cls"]]
    assert review[0]["text"] == "approved, 3 rows rejected, 1 row edited" and review[1]["text"] == ""
    assert layout["select"] <= 300  # the model filter is not as wide as the model's path
    assert LONG_MODEL in driver.find_element(By.ID, "model").text


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _saved(site: Path) -> dict:
    path = site / "decisions.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_decide_in_the_page_save_through_the_server_and_apply(driver, badge_site: Path, badge_root: Path,  # noqa: F811
                                                               tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from lerobot_keyframes.cli import main
    from lerobot_keyframes.review.serve import make_server

    site = tmp_path / "site"
    shutil.copytree(badge_site, site)
    before = _digest(badge_root)
    server = make_server(site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        data = _open(driver, f"{base}/episodes/episode_000000.html")  # videos over HTTP byte ranges
        starts = _subtask_frames(badge_root, 0)
        assert shown_frames(driver) == [0, 0]
        bands = driver.find_elements(By.CSS_SELECTOR, ".subtask-band")
        _click(driver, bands[2])
        _keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        moved_to = starts[2] + 3
        assert shown_frames(driver) == [moved_to] * 2
        strips = driver.find_elements(By.CSS_SELECTOR, ".strip")
        _click(driver, strips[2].find_element(By.CSS_SELECTOR, "button.move-start"))
        wait_for(lambda: (_saved(site).get("episodes", {}).get("0", {}).get("rows", {})
                          .get(strips[2].get_attribute("data-row"), {}).get("frame")) == moved_to,
                 what="the moved boundary in decisions.json")
        assert int(bands[2].get_attribute("data-start")) == moved_to  # the band moved on the timeline
        label = strips[1].find_element(By.CSS_SELECTOR, "input.label-edit")
        old_label = label.get_attribute("value")
        label.clear()
        label.send_keys("lift it gently", Keys.TAB)
        assert bands[1].text == "lift it gently"
        cards = driver.find_elements(By.CSS_SELECTOR, ".vqa-item:not(.trace-item)")
        bbox_card = [c for c in cards if '"detections"' in c.find_element(By.CSS_SELECTOR, "pre.answer").text][0]
        rejected_card = [c for c in cards if c != bbox_card][0]
        _click(driver, rejected_card.find_element(By.CSS_SELECTOR, "button.reject"))
        answer = json.loads(bbox_card.find_element(By.CSS_SELECTOR, "pre.answer").text)
        answer["detections"][0]["bbox"] = [10.0, 20.0, 110.0, 120.0]
        new_answer = json.dumps(answer, sort_keys=True)
        area = bbox_card.find_element(By.CSS_SELECTOR, "textarea.answer-edit")
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                              area, new_answer)
        svg = bbox_card.find_element(By.CSS_SELECTOR, "svg")
        rect = bbox_card.find_element(By.CSS_SELECTOR, "rect.bbox")
        scale = float(svg.get_attribute("data-width")) / answer["image_size"][0]
        assert float(rect.get_attribute("x")) == pytest.approx(10.0 * scale, abs=0.05)  # redrawn from the edit
        driver.find_element(By.ID, "approve-episode").click()
        wait_for(lambda: _saved(site).get("episodes", {}).get("0", {}).get("status") == "approved",
                 what="the approval in decisions.json")

        _open(driver, f"{base}/episodes/episode_000001.html")
        assert driver.find_element(By.ID, "episode-status").text == "undecided"
        driver.find_element(By.ID, "reject-episode").click()
        wait_for(lambda: _saved(site).get("episodes", {}).get("1", {}).get("status") == "rejected",
                 what="the rejection in decisions.json")
        saved = _saved(site)
        assert saved["episodes"]["0"]["status"] == "approved"  # episode 0's decisions came back from the server
    finally:
        server.shutdown()
        server.server_close()

    out = tmp_path / "reviewed"
    assert main(["review-apply", str(site / "decisions.json"), "--root", str(badge_root), "--out", str(out),
                 "--reviewer", "test"]) == 0
    assert _digest(badge_root) == before  # the annotated dataset is untouched
    report = validate_dataset(out)
    assert report.ok, report.format()
    anns, times = read_dataset_annotations(out)
    src_anns, _ = read_dataset_annotations(badge_root)
    assert anns[1].empty and not src_anns[1].empty
    ts = times[0]
    subtasks = sorted((r for r in anns[0].persistent if r.style == "subtask"), key=lambda r: r.timestamp)
    src_subtasks = sorted((r for r in src_anns[0].persistent if r.style == "subtask"), key=lambda r: r.timestamp)
    assert [r.content for r in subtasks] == [src_subtasks[0].content, "lift it gently",
                                             *[r.content for r in src_subtasks[2:]]]
    assert subtasks[2].timestamp == float(ts[moved_to])  # the exact parquet timestamp of the frame chosen
    old_t = src_subtasks[2].timestamp
    assert not [r for r in anns[0].persistent if r.style == "memory" and r.timestamp == old_t]
    assert [r for r in anns[0].persistent if r.style == "memory" and r.timestamp == subtasks[2].timestamp]
    plans = [r.content for r in anns[0].persistent if r.style == "plan"]
    assert plans and all(old_label not in p.split("\n")[0] for p in plans)
    assert any("lift it gently" in p for p in plans)
    vqa = [r for r in anns[0].events if r.style == "vqa"]
    src_vqa = [r for r in src_anns[0].events if r.style == "vqa"]
    assert len(vqa) == len(src_vqa) - 2  # the rejected question and its answer
    assert new_answer in [r.content for r in vqa]
    provenance = json.loads((out / "meta" / "annotation_provenance.json").read_text())
    assert provenance["model_id"] == MODEL  # the annotation's provenance is kept, the review added
    review = provenance["human_review"][-1]
    assert review["by"] == "person" and review["reviewer"] == "test"
    assert review["episodes_approved"] == [0] and review["episodes_rejected"] == [1]
    assert review["rows_edited"] == 2 and review["rows_rejected"] == 2
    assert {c["action"] for c in review["changes"]} >= {"edit", "move", "reject", "reject_episode"}
    assert data["rows"][strips_row(review, "move")]["frame"] == starts[2]


def strips_row(review: dict, action: str) -> str:
    return next(c["row"] for c in review["changes"] if c["action"] == action and "because" not in c)


def test_static_page_downloads_decisions_that_apply(driver, badge_site: Path, badge_root: Path,  # noqa: F811
                                                    tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from lerobot_keyframes.review import apply_decisions, load_decisions

    _open(driver, (badge_site / "episodes" / "episode_000000.html").as_uri())
    assert driver.find_element(By.ID, "episode-status").text == "undecided"
    card = driver.find_element(By.CSS_SELECTOR, ".vqa-item:not(.trace-item)")
    _click(driver, card.find_element(By.CSS_SELECTOR, "button.reject"))
    assert "decision-rejected" in card.get_attribute("class")
    driver.find_element(By.ID, "approve-episode").click()
    driver.find_element(By.ID, "download-decisions").click()
    path = wait_for(lambda: next(iter(driver.downloads.glob("decisions*.json")), None), what="the download")
    wait_for(lambda: path.stat().st_size > 0 and json.loads(path.read_text()), what="the downloaded file")
    data = load_decisions(path)
    assert data["episodes"]["0"]["status"] == "approved"
    assert sorted(d.get("status") for d in data["episodes"]["0"]["rows"].values()) == ["rejected", "rejected"]
    driver.get((badge_site / "index.html").as_uri())  # the index shows what was decided on the episode page
    cell = driver.find_element(By.CSS_SELECTOR, "tr.episode-row[data-episode='0'] .review-cell")
    wait_for(lambda: "approved" in cell.text, what="the index to show the decision")
    driver.execute_script("localStorage.clear()")  # another browser: it continues from the saved file
    _open(driver, (badge_site / "episodes" / "episode_000000.html").as_uri())
    assert driver.find_element(By.ID, "episode-status").text == "undecided"
    driver.find_element(By.ID, "load-decisions").send_keys(str(path))
    wait_for(lambda: driver.find_element(By.ID, "episode-status").text == "approved", what="loaded decisions")
    card = driver.find_element(By.CSS_SELECTOR, ".vqa-item:not(.trace-item)")
    assert "decision-rejected" in card.get_attribute("class")
    result = apply_decisions(badge_root, path, tmp_path / "reviewed")
    assert result.report.ok and result.rows_rejected == 2 and result.episodes_approved == (0,)
    anns, _ = read_dataset_annotations(tmp_path / "reviewed", episodes=[0])
    src, _ = read_dataset_annotations(badge_root, episodes=[0])
    assert len(anns[0].events) == len(src[0].events) - 2


def test_h264_rolled_over_files_and_an_image_camera_seek_exactly(driver, tmp_path: Path) -> None:  # noqa: F811
    """Episodes past the first of an mp4 (from_timestamp > 0), in H.264, next to a camera stored as PNGs."""
    from selenium.webdriver.common.by import By

    from lerobot_keyframes.testing.sample import make_sample_dataset

    src = make_sample_dataset(tmp_path / "src", episodes=2, episode_seconds=1.0, codec="h264", image_camera="top",
                              max_video_file_mb=0.05, frame_badge=True)
    write_language(src, synthetic_annotations(src), out=tmp_path / "ann")
    build_review(tmp_path / "ann", tmp_path / "site", config=ReviewConfig(workers=1))
    data = _open(driver, (tmp_path / "site" / "episodes" / "episode_000001.html").as_uri())
    assert [c["slug"] for c in data["cameras"]] == ["front", "wrist"]  # the PNG camera has thumbnails, no player
    assert all(c["from"] > 0 for c in data["cameras"])
    starts = _subtask_frames(tmp_path / "ann", 1)
    bands = driver.find_elements(By.CSS_SELECTOR, ".subtask-band")
    assert len(bands) == len(starts) >= 2
    _click(driver, bands[-1])
    assert shown_frames(driver) == [starts[-1]] * 2
