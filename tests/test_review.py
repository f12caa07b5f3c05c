"""The review site: HTML content, VQA geometry in both coordinate conventions, PNG timelines, CLI, and a real
headless Chromium that must show the episode count, the subtask labels and the drawn boxes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from browser_helpers import chromium, driver  # noqa: F401 (fixtures)

from lerobot_keyframes.language import EpisodeAnnotations, LanguageRow, write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.review import ReviewConfig, build_review, trace_shape, vqa_shapes

FRONT = "observation.images.front"
REPO = Path(__file__).resolve().parents[1]
# one known bbox answer per episode, in each convention; the review draws VQA frames 320 px wide (240 high)
KNOWN = {
    0: {"coords": "pixel", "image_size": [640, 480],
        "detections": [{"label": "known cube", "bbox_format": "xyxy", "bbox": [64.0, 48.0, 320.0, 240.0]}]},
    1: {"coords": "norm1000", "image_size": [640, 480],
        "detections": [{"label": "known cube", "bbox_format": "xyxy", "bbox": [100.0, 200.0, 500.0, 600.0]}]},
}
EXPECTED_RECT = {0: (32.0, 24.0, 128.0, 96.0), 1: (32.0, 48.0, 128.0, 96.0)}  # x, y, width, height on 320x240
# one known trace per episode (a pixel trajectory in pixels of 640x480) and its points on the 320x240 frame
TRACE = {"coords": "pixel", "image_size": [640, 480], "label": "gripper path", "point_format": "xy",
         "points": [[64, 48], [320, 240], [600, 400]]}
EXPECTED_TRACE = [(32.0, 24.0), (160.0, 120.0), (300.0, 200.0)]


def _with_known_boxes(ann: EpisodeAnnotations) -> EpisodeAnnotations:
    """Replace the first-frame front-camera VQA pair by a bbox question with the known answer; add a trace."""
    t0 = min(r.timestamp for r in ann.events)
    events = [r for r in ann.events if not (r.style == "vqa" and r.camera == FRONT and r.timestamp == t0)]
    answer = json.dumps(KNOWN[ann.episode_index], sort_keys=True)
    events += [LanguageRow("user", "Where is the known cube?", "vqa", t0, camera=FRONT, question_type="bbox"),
               LanguageRow("assistant", answer, "vqa", t0, camera=FRONT, question_type="bbox"),
               LanguageRow("assistant", json.dumps(TRACE, sort_keys=True), "trace", t0, camera=FRONT)]
    return dataclasses.replace(ann, events=tuple(events))


@pytest.fixture(scope="module")
def annotated(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[EpisodeAnnotations]]:
    anns = [_with_known_boxes(a) for a in synthetic_annotations(sample_root)]
    out = tmp_path_factory.mktemp("review_ds") / "ds"
    write_language(sample_root, anns, out=out)
    return out, anns


@pytest.fixture(scope="module")
def site(annotated: tuple[Path, list[EpisodeAnnotations]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, _ = annotated
    out = tmp_path_factory.mktemp("review_site")
    index = build_review(root, out, png=True, config=ReviewConfig(workers=1))
    assert index == out / "index.html"
    return out


def _page(site: Path, episode: int) -> str:
    return (site / "episodes" / f"episode_{episode:06d}.html").read_text()


def _rects(page: str) -> list[tuple[float, float, float, float]]:
    return [tuple(float(v) for v in m) for m in re.findall(
        r'<rect class="bbox" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', page)]


def test_index_lists_every_episode_with_counts(site: Path, annotated: tuple[Path, list[EpisodeAnnotations]]) -> None:
    index = (site / "index.html").read_text()
    assert 'id="episode-count" data-count="2"' in index
    assert index.count('class="episode-row"') == 2
    for a in annotated[1]:
        assert f'href="episodes/episode_{a.episode_index:06d}.html"' in index
        n_sub = sum(r.style == "subtask" for r in a.persistent)
        assert re.search(rf'data-episode="{a.episode_index}">.*?<td class="num">{n_sub}</td>', index)
    assert "http://" not in index and "https://" not in index  # no CDN, nothing from the web


def test_episode_pages_show_subtasks_rephrasings_and_links(site: Path,
                                                            annotated: tuple[Path, list[EpisodeAnnotations]]) -> None:
    for a in annotated[1]:
        page = _page(site, a.episode_index)
        labels = [r.content for r in sorted(a.persistent, key=lambda r: r.timestamp) if r.style == "subtask"]
        bands = re.findall(r'class="band subtask-band"[^>]*>([^<]*)</div>', page)
        assert bands == labels
        for r in a.persistent:
            if r.style == "task_aug":
                assert re.search(rf'<li class="task-aug row-item" data-row="p\d+">{re.escape(r.content)} ', page)
        assert page.count('class="tick interjection"') == sum(r.style == "interjection" for r in a.events)
        assert "https://" not in page and "http://" not in page
        for src in re.findall(r'src="([^"]+)"', page):  # every image exists, relative to the page
            assert (site / "episodes" / src).resolve().is_file(), src
    static = sorted((site / "static").iterdir())
    assert [p.name for p in static] == ["decisions.js", "episode.js", "index.js", "review.css"]
    for p in static:  # the scripts and CSS reach nothing on the network either
        assert "http://" not in p.read_text() and "https://" not in p.read_text()
    assert 'id="next" href="episode_000001.html"' in _page(site, 0)
    assert 'id="prev" href="episode_000000.html"' in _page(site, 1)


@pytest.mark.parametrize("episode", [0, 1])
def test_known_boxes_drawn_in_the_recorded_convention(site: Path, episode: int) -> None:
    page = _page(site, episode)
    assert EXPECTED_RECT[episode] in _rects(page)
    note = "pixel of 640x480" if episode == 0 else "norm1000"
    assert note in page


@pytest.mark.parametrize("episode", [0, 1])
def test_known_trace_drawn_on_its_camera_frame(site: Path, episode: int) -> None:
    page = _page(site, episode)
    lines = re.findall(r'<polyline class="trace" points="([^"]+)" data-label="gripper path">', page)
    assert len(lines) == 1
    assert [tuple(float(v) for v in p.split(",")) for p in lines[0].split()] == EXPECTED_TRACE
    card = page[page.index('id="trace-0"'):]
    assert f'data-camera="{FRONT}"' in card[:200] and "pixel of 640x480" in card
    assert page.count('class="tick trace"') == 1
    assert 'href="#trace-0"' in page


def test_trace_shape_formats() -> None:
    bare = json.dumps([[0, 0], [50, 100]])  # no convention: camera pixels
    shape, note = trace_shape(bare, (160, 120), (320, 240))
    assert shape is not None and shape.points == ((0, 0), (25, 50)) and "not recorded" in note
    norm = json.dumps({"trajectory": [[500, 500], [1000, 0], [0, 1000]], "coords": "norm1000"})
    shape, _ = trace_shape(norm, (320, 240), None)
    assert shape is not None and shape.points == ((160, 120), (320, 0), (0, 240))
    assert trace_shape("not json", (320, 240), None) == (None, "trace is not JSON")
    for bad in ('{"points": [[1, 2]]}', '{"points": [[1, 2], [3]]}', '{"points": [[1, true], [3, 4]]}', '"x"'):
        shape, why = trace_shape(bad, (320, 240), None)
        assert shape is None and why, bad


def test_vqa_shapes_conventions() -> None:
    box = {"detections": [{"label": "a", "bbox_format": "xyxy", "bbox": [10, 20, 30, 60]}]}
    pixel = json.dumps({**box, "coords": "pixel", "image_size": [100, 200]})
    shapes, note = vqa_shapes(pixel, (200, 100), None)
    assert (shapes[0].x, shapes[0].y, shapes[0].w, shapes[0].h) == (20, 10, 40, 20) and "pixel" in note
    norm = json.dumps({**box, "coords": "norm1000", "image_size": [100, 200]})
    shapes, _ = vqa_shapes(norm, (200, 100), None)
    assert (shapes[0].x, shapes[0].y, shapes[0].w, shapes[0].h) == pytest.approx((2, 2, 4, 4))
    shapes, note = vqa_shapes(json.dumps(box), (160, 120), (320, 240))  # no convention: camera pixels
    assert (shapes[0].x, shapes[0].w) == (5, 10) and "not recorded" in note
    point = json.dumps({"label": "p", "point_format": "xy", "point": [500, 250], "coords": "norm1000"})
    shapes, _ = vqa_shapes(point, (320, 240), None)
    assert (shapes[0].kind, shapes[0].x, shapes[0].y) == ("point", 160, 60)
    assert vqa_shapes('{"count": 1, "label": "x"}', (320, 240), None)[0] == []
    assert vqa_shapes("not json", (320, 240), None) == ([], "answer is not JSON")


def test_assets_are_small_jpegs_and_png_timelines(site: Path) -> None:
    from PIL import Image

    jpegs = sorted((site / "assets").rglob("*.jpg"))
    assert jpegs
    for p in jpegs:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.width <= 320
        assert p.stat().st_size < 40_000
    for e in (0, 1):
        with Image.open(site / "timelines" / f"episode_{e:06d}.png") as im:
            assert im.format == "PNG" and im.width >= 600
        assert 'href="../timelines/episode_' in _page(site, e)


def test_process_pool_and_cli_match_in_process(site: Path, annotated: tuple[Path, list[EpisodeAnnotations]],
                                               tmp_path: Path) -> None:
    from lerobot_keyframes.cli import main

    root = annotated[0]
    pooled = build_review(root, tmp_path / "pool", config=ReviewConfig(workers=2))
    assert pooled.read_text() == (site / "index.html").read_text()
    assert _page(tmp_path / "pool", 1) == _page(site, 1).replace(
        '<p><a href="../timelines/episode_000001.png">timeline image (PNG)</a></p>', "")
    assert main(["review", str(root), "--out", str(tmp_path / "cli"), "--episodes", "1", "--workers", "1",
                 "--thumbs_per_camera", "3", "--validate", "false"]) == 0
    index = (tmp_path / "cli" / "index.html").read_text()
    assert 'data-count="1"' in index and "not validated" in index
    page = _page(tmp_path / "cli", 1)
    assert EXPECTED_RECT[1] in _rects(page) and page.count('class="thumb"') == 2 * 3


def test_unannotated_dataset_and_bad_config(sample_root: Path, tmp_path: Path) -> None:
    index = build_review(sample_root, tmp_path / "site", episodes=[1], config=ReviewConfig(thumbs_per_camera=2,
                                                                                            strip_frames=0))
    text = index.read_text()
    assert 'data-count="1"' in text and "no annotations" in text
    page = _page(tmp_path / "site", 1)
    assert page.count('class="thumb"') == 2 * 2 and 'class="band subtask-band"' not in page  # 2 cameras x 2 thumbnails
    with pytest.raises(ValueError, match="episode 99 does not exist"):
        build_review(sample_root, tmp_path / "none", episodes=[99])
    with pytest.raises(ValueError, match="no episodes to review"):
        build_review(sample_root, tmp_path / "none", episodes=[])
    with pytest.raises(ValueError, match="jpeg_quality"):
        ReviewConfig(jpeg_quality=0)


QUALITY = [{"kind": "black_camera", "episode_index": 1, "camera": FRONT, "time": 0.5, "value": 0.0,
            "message": "all 8 sampled frames are black (mean pixel 0.0)"},
           {"kind": "short_episode", "episode_index": 1, "camera": None, "time": None, "value": 0.2,
            "message": "2.0 s, 0.2x the median of its neighbours"}]


@pytest.fixture(scope="module")
def quality_site(annotated: tuple[Path, list[EpisodeAnnotations]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review of a copy of the dataset whose provenance records two quality findings for episode 1."""
    base = tmp_path_factory.mktemp("quality")
    root = base / "ds"
    shutil.copytree(annotated[0], root)
    (root / "meta" / "annotation_provenance.json").write_text(json.dumps({"quality": {"1": QUALITY}}))
    # not validated, so only the findings can make an episode need attention
    build_review(root, base / "site", config=ReviewConfig(workers=1, videos="none", thumbs_per_camera=1,
                                                          strip_frames=0, validate=False))
    return base / "site"


def _index_row(index: str, episode: int) -> str:
    return re.search(rf'<tr class="episode-row"[^>]*data-episode="{episode}">.*?</tr>', index, re.S).group(0)


def test_quality_findings_on_the_episode_page_and_in_the_index(site: Path, quality_site: Path) -> None:
    page = _page(quality_site, 1)
    items = re.findall(r'<li class="warn quality-finding" data-kind="([a-z_]+)">(.*?)</li>', page)
    assert [k for k, _ in items] == ["black_camera", "short_episode"]
    assert FRONT in items[0][1] and "at 0.500s" in items[0][1] and QUALITY[0]["message"] in items[0][1]
    assert QUALITY[1]["message"] in items[1][1] and " at " not in items[1][1]
    assert 'id="quality-summary"' in page and "2 quality finding(s)" in page
    assert "quality-finding" not in _page(quality_site, 0)  # the episode without findings lists none
    index = (quality_site / "index.html").read_text()
    row1, row0 = _index_row(index, 1), _index_row(index, 0)
    assert 'data-quality="2"' in row1 and 'data-attention="1"' in row1
    assert '<td class="num quality-cell warn" title="black_camera, short_episode">2</td>' in row1
    assert 'data-quality="0"' in row0 and 'data-attention="0"' in row0 and '<td class="num quality-cell">0</td>' in row0
    # a provenance without "quality" (the plain site) shows no findings anywhere
    plain = (site / "index.html").read_text()
    assert 'data-quality="2"' not in plain and plain.count('data-quality="0"') == 2
    assert all("quality-finding" not in _page(site, e) for e in (0, 1))
    data = json.loads(re.search(r'<script type="application/json" id="episode-data">(.*?)</script>', _page(
        quality_site, 0)).group(1))
    assert data["attention"] == [1]  # the episode pages' "next needing attention" goes there too


# -- a real browser ----------------------------------------------------------------------------------
def test_browser_shows_episodes_subtasks_and_boxes(driver, site: Path, tmp_path: Path,  # noqa: F811
                                                   annotated: tuple[Path, list[EpisodeAnnotations]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get((site / "index.html").as_uri())
    count = driver.find_element(By.ID, "episode-count")
    assert count.is_displayed() and count.text == "2 episodes"
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.episode-row")
    assert len(rows) == 2 and all(r.is_displayed() for r in rows)
    driver.save_screenshot(str(tmp_path / "review_index.png"))

    rows[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("episode_000000.html"))
    labels = [r.content for r in sorted(annotated[1][0].persistent, key=lambda r: r.timestamp) if r.style == "subtask"]
    bands = driver.find_elements(By.CSS_SELECTOR, ".subtask-band")
    assert [b.get_attribute("textContent") for b in bands] == labels
    assert all(b.is_displayed() and b.size["width"] > 0 for b in bands)
    strips = driver.find_elements(By.CSS_SELECTOR, ".strip .subtask-label")
    assert [s.text for s in strips] == labels and all(s.is_displayed() for s in strips)

    item = driver.find_element(By.ID, "vqa-0")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", item)
    img = item.find_element(By.CSS_SELECTOR, ".vqa-frame img")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
    rects = driver.find_elements(By.CSS_SELECTOR, "rect.bbox")
    assert rects and all(r.is_displayed() for r in rects)
    known = [r for r in rects if r.get_attribute("data-label") == "known cube"]
    assert len(known) == 1
    # on screen the box sits where the converted coordinates say, relative to the displayed image
    box = driver.execute_script("var r=arguments[0].getBoundingClientRect(), i=arguments[1].getBoundingClientRect();"
                                "return [r.left-i.left, r.top-i.top, r.width, r.height, i.width, i.height];",
                                known[0], img)
    sx, sy = box[4] / 320, box[5] / 240
    x, y, w, h = EXPECTED_RECT[0]
    assert box[:4] == pytest.approx([x * sx, y * sy, w * sx, h * sy], abs=3)  # stroke width
    item.screenshot(str(tmp_path / "review_vqa.png"))

    trace = driver.find_element(By.ID, "trace-0")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", trace)
    line = trace.find_element(By.CSS_SELECTOR, "polyline.trace")
    frame = trace.find_element(By.CSS_SELECTOR, ".vqa-frame img")
    assert line.is_displayed() and frame.is_displayed()
    bounds = driver.execute_script("var r=arguments[0].getBoundingClientRect(), i=arguments[1].getBoundingClientRect();"
                                   "return [r.left-i.left, r.top-i.top, r.right-i.left, r.bottom-i.top, i.width, i.height];",
                                   line, frame)
    sx, sy = bounds[4] / 320, bounds[5] / 240
    xs, ys = [p[0] for p in EXPECTED_TRACE], [p[1] for p in EXPECTED_TRACE]
    assert bounds[:4] == pytest.approx([min(xs) * sx, min(ys) * sy, max(xs) * sx, max(ys) * sy], abs=3)
    trace.screenshot(str(tmp_path / "review_trace.png"))
    driver.save_screenshot(str(tmp_path / "review_episode.png"))
    assert (tmp_path / "review_episode.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "review_episode.png", os.environ.get("REVIEW_SCREENSHOT", tmp_path / "artifact.png"))


def test_browser_quality_filter_and_attention_jump(driver, quality_site: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get((quality_site / "index.html").as_uri())
    cell = driver.find_element(By.CSS_SELECTOR, 'tr[data-episode="1"] .quality-cell')
    assert cell.text == "2" and cell.get_attribute("title") == "black_camera, short_episode"
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("quality")
    shown = [r.get_attribute("data-episode") for r in driver.find_elements(By.CSS_SELECTOR, "tr.episode-row")
             if r.is_displayed()]
    assert shown == ["1"]
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("")
    header = driver.find_element(By.CSS_SELECTOR, "th[data-sort=quality]")
    header.click()
    header.click()  # descending: most findings first
    assert [r.get_attribute("data-episode") for r in driver.find_elements(By.CSS_SELECTOR, "tr.episode-row")] == [
        "1", "0"]
    driver.find_element(By.ID, "next-attention").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("episode_000001.html"))
    assert driver.find_element(By.ID, "quality").is_displayed()
