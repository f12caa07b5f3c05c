"""Applying review decisions (rows dropped, edits kept, boundaries snapped to parquet frames, dependants
following), the local review server (byte ranges, decisions API, loopback only), `review --serve` and
`review-apply` from the CLI, and the PNG timeline (every camera, last thumbnail inside the image)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.language.validator import read_dataset_annotations, validate_dataset
from lerobot_keyframes.review import ReviewConfig, apply_decisions, build_review, load_decisions
from lerobot_keyframes.review.apply import DecisionsError
from lerobot_keyframes.review.identity import annotations_digest, dataset_identity
from lerobot_keyframes.review.model import row_ids, row_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def annotated(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("apply_ds") / "ds"
    write_language(sample_root, synthetic_annotations(sample_root), out=out)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _decisions(root: Path, episode: int, rows: dict[str, dict], status: str | None = None) -> dict:
    """Decisions as the site's page writes them: the dataset's identity, the episode's digest, `was` per row."""
    anns, times = read_dataset_annotations(root, episodes=[episode])
    stored = dict(row_ids(anns[episode]))
    info = json.loads((root / "meta" / "info.json").read_text())
    return {"format": "lerobot_keyframes.review.decisions", "version": 1, "dataset": str(root),
            "dataset_id": dataset_identity(info),
            "episodes": {str(episode): {"status": status, "annotations": annotations_digest(anns[episode], times[episode]),
                                        "rows": {k: {**v, "was": row_record(stored[k])} for k, v in rows.items()}}}}


def _find(root: Path, episode: int, pred) -> list[str]:
    anns, _ = read_dataset_annotations(root, episodes=[episode])
    return [k for k, r in row_ids(anns[episode]) if pred(r)]


def test_rejected_answer_takes_its_question_and_speech_its_interjection(annotated: Path, tmp_path: Path) -> None:
    answer = _find(annotated, 0, lambda r: r.style == "vqa" and r.role == "assistant")[0]
    inter = _find(annotated, 0, lambda r: r.style == "interjection")
    speech_at = _find(annotated, 0, lambda r: r.style is None)
    anns, times = read_dataset_annotations(annotated, episodes=[0])
    rows = dict(row_ids(anns[0]))
    t_inter = rows[inter[0]].timestamp
    speech = [k for k in speech_at if rows[k].timestamp == t_inter]
    assert inter and speech
    before = _digest(annotated)
    result = apply_decisions(annotated, _decisions(annotated, 0, {answer: {"status": "rejected"},
                                                                  speech[0]: {"status": "rejected"}}),
                             tmp_path / "out")
    assert _digest(annotated) == before
    assert result.rows_rejected == 2 and validate_dataset(tmp_path / "out").ok
    out, _ = read_dataset_annotations(tmp_path / "out", episodes=[0])
    a = rows[answer]
    assert not [r for r in out[0].events if r.style == "vqa" and r.timestamp == a.timestamp and r.camera == a.camera]
    assert not [r for r in out[0].events if r.style == "interjection"]
    assert len(out[0].events) == len(anns[0].events) - 4  # answer + question, speech + interjection
    because = [c for c in result.changes if "because" in c]
    assert {c["style"] for c in because} == {"vqa", "interjection"}
    untouched, _ = read_dataset_annotations(tmp_path / "out", episodes=[1])
    src1, _ = read_dataset_annotations(annotated, episodes=[1])
    assert untouched[1] == src1[1]  # episodes without decisions keep their rows


def test_moved_boundary_is_an_exact_parquet_time_and_memory_follows(annotated: Path, tmp_path: Path) -> None:
    anns, times = read_dataset_annotations(annotated, episodes=[1])
    ts = times[1]
    subs = sorted(((k, r) for k, r in row_ids(anns[1]) if r.style == "subtask"), key=lambda kr: kr[1].timestamp)
    k, row = subs[1]
    frame = int(np.nonzero(ts == np.float32(row.timestamp))[0][0]) - 4
    label = subs[3]
    result = apply_decisions(annotated, _decisions(annotated, 1, {k: {"frame": frame},
                                                                  label[0]: {"content": "put it down softly"}}),
                             tmp_path / "out", reviewer="me")
    assert result.boundaries_moved == 1 and result.rows_edited == 1
    out, _ = read_dataset_annotations(tmp_path / "out", episodes=[1])
    new = dict(row_ids(out[1]))
    assert new[k].timestamp == float(ts[frame]) and np.float32(new[k].timestamp) == ts[frame]
    memory = [r for r in out[1].persistent if r.style == "memory"]
    assert float(ts[frame]) in [r.timestamp for r in memory] and row.timestamp not in [r.timestamp for r in memory]
    assert new[label[0]].content == "put it down softly"
    plans = [r.content for r in out[1].persistent if r.style == "plan"]
    assert any("put it down softly" in p for p in plans) and not any(label[1].content in p.split("\n") for p in plans)
    prov = json.loads((tmp_path / "out" / "meta" / "annotation_provenance.json").read_text())
    assert prov["human_review"][-1]["reviewer"] == "me" and prov["human_review"][-1]["rows_moved"] == 1


def test_rejected_episode_loses_its_rows_and_the_dataset_still_validates(annotated: Path, tmp_path: Path) -> None:
    result = apply_decisions(annotated, _decisions(annotated, 0, {}, status="rejected"), tmp_path / "out")
    assert result.episodes_rejected == (0,)
    out, _ = read_dataset_annotations(tmp_path / "out")
    assert out[0].empty and not out[1].empty
    assert validate_dataset(tmp_path / "out").ok


def test_bad_decisions_fail_before_writing(annotated: Path, tmp_path: Path) -> None:
    subs = _find(annotated, 0, lambda r: r.style == "subtask")
    anns, times = read_dataset_annotations(annotated, episodes=[0])
    rows = dict(row_ids(anns[0]))
    ordered = sorted(subs, key=lambda k: rows[k].timestamp)
    first_plan = _find(annotated, 0, lambda r: r.style == "plan")[0]
    later = int(np.nonzero(times[0] == np.float32(rows[ordered[2]].timestamp))[0][0]) + 2
    cases = [
        ({ordered[1]: {"frame": 0}}, "outside"),
        ({ordered[1]: {"frame": later}}, "order"),
        ({first_plan: {"frame": 3}}, "only a subtask"),
        ({ordered[0]: {"status": "rejected"}}, "subtask_coverage"),  # frames before the next one lose a subtask
        ({_find(annotated, 0, lambda r: r.style == "vqa" and r.role == "assistant")[0]: {"content": "not json"}},
         "vqa_answer"),
    ]
    for rows_decided, message in cases:
        with pytest.raises(DecisionsError, match=message):
            apply_decisions(annotated, _decisions(annotated, 0, rows_decided), tmp_path / "out")
        assert not (tmp_path / "out").exists()
    stale = _decisions(annotated, 0, {ordered[1]: {"content": "x"}})
    stale["episodes"]["0"]["rows"][ordered[1]]["was"]["content"] = "something else"
    with pytest.raises(DecisionsError, match=f"row {ordered[1]}: the dataset's row"):
        apply_decisions(annotated, stale, tmp_path / "out")
    with pytest.raises(DecisionsError, match="not a review decisions file"):
        load_decisions({"episodes": {}})
    with pytest.raises(DecisionsError, match="episode\\(s\\) \\[7\\]"):
        far = _decisions(annotated, 0, {}, status="approved")
        far["episodes"] = {"7": far["episodes"]["0"]}
        apply_decisions(annotated, far, tmp_path / "out")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        apply_decisions(annotated, _decisions(annotated, 0, {}, status="approved"), tmp_path / "exists")


def test_review_apply_cli_errors_in_one_line(annotated: Path, tmp_path: Path, capsys) -> None:
    from lerobot_keyframes.cli import main

    bad = tmp_path / "d.json"
    bad.write_text("{nope")
    assert main(["review-apply", str(bad), "--root", str(annotated), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lerobot-keyframes review-apply: error: {bad}: not JSON") and not (tmp_path / "o").exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_decisions(annotated, 1, {}, status="approved")))
    assert main(["review-apply", str(good), "--root", str(annotated), "--out", str(tmp_path / "o")]) == 0
    assert "0 row(s) dropped" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_site(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("apply_site") / "site"
    build_review(annotated, out, episodes=[0], config=ReviewConfig(workers=1, validate=False))
    return out


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_server_ranges_decisions_and_loopback_only(small_site: Path, annotated: Path) -> None:
    from lerobot_keyframes.review.serve import make_server

    with pytest.raises(ValueError, match="loopback"):
        make_server(small_site, host="0.0.0.0")
    server = make_server(small_site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        video = next((small_site / "videos").rglob("*.mp4"))
        rel = video.relative_to(small_site).as_posix()
        status, headers, body = _get(f"{base}/{rel}", {"Range": "bytes=100-199"})
        assert status == 206 and body == video.read_bytes()[100:200]
        assert headers["Content-Range"] == f"bytes 100-199/{video.stat().st_size}"
        status, _, body = _get(f"{base}/api/decisions")
        assert status == 200 and json.loads(body)["episodes"] == {}
        decisions = _decisions(annotated, 0, {}, status="approved")
        page = _get(f"{base}/index.html")[2].decode()
        token = page.split('<meta name="review-token" content="')[1].split('"')[0]  # this run's, in every page
        assert token == server.token and b"review-token" in (small_site / "index.html").read_bytes()
        assert server.token not in (small_site / "index.html").read_text()  # served, never written to disk
        for payload, code in ((b"[1]", 400), (json.dumps(decisions).encode(), 200)):
            req = urllib.request.Request(f"{base}/api/decisions", data=payload, method="POST",
                                         headers={"Content-Type": "application/json", "X-Review-Token": token})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    assert r.status == code
            except urllib.error.HTTPError as exc:
                assert exc.code == code
        assert json.loads((small_site / "decisions.json").read_text())["episodes"]["0"]["status"] == "approved"
        assert json.loads(_get(f"{base}/api/decisions")[2]) == load_decisions(small_site / "decisions.json")
    finally:
        server.shutdown()
        server.server_close()
    # a rebuild keeps the reviewer's decisions and does not copy hard-linked videos again
    build_review(annotated, small_site, episodes=[0], config=ReviewConfig(workers=1, validate=False))
    assert (small_site / "decisions.json").is_file()
    assert video.stat().st_ino == (annotated / "videos" / video.relative_to(small_site / "videos")).stat().st_ino


def test_cli_serve_binds_loopback_and_answers(annotated: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lerobot_keyframes.cli", "review", str(annotated), "--out",
                             str(tmp_path / "site"), "--episodes", "1", "--workers", "1", "--validate", "false",
                             "--videos", "copy", "--serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # index path
        line = proc.stdout.readline()
        assert line.startswith("review at http://127.0.0.1:"), line
        url = line.split()[2]
        status, _, body = _get(url)
        assert status == 200 and b'id="episode-count" data-count="1"' in body
        copied = next((tmp_path / "site" / "videos").rglob("*.mp4"))
        assert copied.stat().st_nlink == 1  # --videos copy
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_png_timeline_has_every_camera_and_keeps_the_last_thumbnail_inside(tmp_path: Path) -> None:
    from PIL import Image

    from lerobot_keyframes.review.model import SUBTASK_COLORS, EpisodeView, Span
    from lerobot_keyframes.review.timeline import render_timeline_png

    ts = np.arange(60, dtype=np.float32) / 30
    view = EpisodeView(0, "task", 30.0, ts, [], spans=[Span(0.0, 1.0, "a", 0, 30), Span(1.0, 2.0, "b", 30, 60)])
    red, blue = Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (40, 30), (0, 0, 255))
    path = render_timeline_png(view, [("front", [(float(t), red) for t in ts[::10]]),
                                      ("wrist", [(float(t), blue) for t in ts[::10]])], tmp_path / "t.png")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)

    def columns(rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.nonzero(np.abs(img - np.array(rgb)).sum(axis=2) < 30)
        return ys, xs

    ry, rx = columns((255, 0, 0))
    by, bx = columns((0, 0, 255))
    assert len(rx) and len(bx) and ry.max() < by.min()  # both cameras, one row each
    last = tuple(int(SUBTASK_COLORS[1][i:i + 2], 16) for i in (1, 3, 5))
    _, sx = columns(last)
    assert rx.max() < img.shape[1] - 1 and abs(rx.max() - sx.max()) <= 3  # ends with the episode, not past it
    assert abs(bx.max() - sx.max()) <= 3


def test_rejected_middle_subtask_leaves_the_plans_and_its_memory(annotated: Path, tmp_path: Path) -> None:
    anns, _ = read_dataset_annotations(annotated, episodes=[0])
    rows = dict(row_ids(anns[0]))
    subs = sorted((k for k, r in rows.items() if r.style == "subtask"), key=lambda k: rows[k].timestamp)
    gone = rows[subs[2]]
    assert any(r.style == "memory" and r.timestamp == gone.timestamp for r in rows.values())
    result = apply_decisions(annotated, _decisions(annotated, 0, {subs[2]: {"status": "rejected"}}), tmp_path / "out")
    assert result.report.ok and result.rows_rejected == 1
    out, _ = read_dataset_annotations(tmp_path / "out", episodes=[0])
    labels = [r.content for r in sorted(out[0].persistent, key=lambda r: r.timestamp) if r.style == "subtask"]
    assert gone.content not in labels and len(labels) == len(subs) - 1
    assert not [r for r in out[0].persistent if r.style == "memory" and r.timestamp == gone.timestamp]
    for plan in (r.content for r in out[0].persistent if r.style == "plan"):
        steps = plan.split("\n")
        assert all(not s.endswith(gone.content) for s in steps)
        assert [s.split(".")[0] for s in steps] == [str(k) for k in range(1, len(steps) + 1)]  # renumbered


def test_moving_a_subtask_start_takes_the_rows_at_that_boundary_along(annotated: Path, tmp_path: Path) -> None:
    """The plan row at a subtask's start follows it (the help says so), also when the reviewer approved that plan
    and also at a boundary where an interjection was made: the interjection, its speech atom and the frame's plan
    row move with the boundary, so the new start has its plan and no frame keeps an orphan."""
    anns, times = read_dataset_annotations(annotated, episodes=[0])
    rows = dict(row_ids(anns[0]))
    ts = times[0]
    subs = sorted((k for k, r in rows.items() if r.style == "subtask"), key=lambda k: rows[k].timestamp)
    t_inter = next(r.timestamp for r in rows.values() if r.style == "interjection")
    at_inter = next(k for k in subs if rows[k].timestamp == t_inter)
    plain = next(k for k in subs[1:] if rows[k].timestamp != t_inter)
    frame = {k: int(np.nonzero(ts == np.float32(rows[k].timestamp))[0][0]) for k in subs}
    new_frame = {at_inter: frame[at_inter] - 2, plain: frame[plain] + 2}
    approved_plan = next(k for k, r in rows.items() if r.style == "plan" and r.timestamp == rows[plain].timestamp)
    decisions = _decisions(annotated, 0, {at_inter: {"frame": new_frame[at_inter]}, plain: {"frame": new_frame[plain]},
                                          approved_plan: {"status": "approved"}})
    result = apply_decisions(annotated, decisions, tmp_path / "out")
    assert result.report.ok, result.report.format()
    out, _ = read_dataset_annotations(tmp_path / "out", episodes=[0])
    every = [*out[0].persistent, *out[0].events]
    for k in (at_inter, plain):
        old_t, new_t = rows[k].timestamp, float(ts[new_frame[k]])
        moved = [(r.style, r.role) for r in rows.values() if r.timestamp == old_t and r.style not in ("vqa", "motion")]
        assert ("plan", "assistant") in moved
        assert not [r for r in every if r.timestamp == old_t and r.style not in ("vqa", "motion")]
        assert sorted((r.style or "", r.role) for r in every if r.timestamp == new_t and r.style != "vqa") == \
            sorted((s or "", role) for s, role in moved)
    inter = [r for r in out[0].events if r.style == "interjection"]
    assert [r.timestamp for r in inter] == [float(ts[new_frame[at_inter]])]
    moves = {c["row"] for c in result.changes if c["action"] == "move" and "because" in c}
    assert approved_plan in moves
