"""`review`, `review-apply` and `eval` from the command line: a Hub repo id is a Hub dataset, --png checks its
optional dependency before any work, and every error is one line with the `lerobot-keyframes <command>:` prefix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations

pytest_plugins = ("hub_fixtures",)  # local_hub


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    base = tmp_path_factory.mktemp("review_cli")
    src = make_sample_dataset(base / "src", episodes=2, cameras=("front",), width=64, height=48,
                              episode_seconds=1.0, codec="h264")
    return write_language(src, synthetic_annotations(src), out=base / "annotated").root


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    from lerobot_keyframes.cli import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"lerobot-keyframes {command}: error: "), err
    return lines[0]


def test_png_without_matplotlib_fails_first_and_writes_nothing(annotated: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError, as when absent
    out = tmp_path / "site"
    rc, _, err = _run(capsys, "review", annotated, "--out", out, "--png", "--workers", "1")
    assert rc == 2
    line = _one_line(err, "review")
    assert "matplotlib" in line and "lerobot_keyframes[review]" in line
    assert not out.exists()  # checked before decoding: no half-built site


def test_review_reads_a_hub_repo_id_as_a_hub_dataset(local_hub, annotated: Path, tmp_path: Path, capsys) -> None:
    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(annotated, "tester/annotated", private=True)
    out = tmp_path / "site"
    rc, stdout, err = _run(capsys, "review", "tester/annotated", "--out", out, "--workers", "1", "--validate", "false")
    assert rc == 0, err
    assert stdout.strip().endswith("index.html")
    html = (out / "index.html").read_text()
    site = json.loads(html.split('id="site-data">')[1].split("</script>")[0])
    assert site["dataset"] == "tester/annotated@v3.0"
    assert sorted(p.name for p in (out / "episodes").iterdir()) == ["episode_000000.html", "episode_000001.html"]
    assert list((out / "assets").rglob("*.jpg"))  # frames decoded from the videos downloaded from the Hub
    assert list((out / "videos").rglob("*.mp4"))  # and the player's videos linked from the cache
    rc, _, err = _run(capsys, "review", "tester/missing", "--out", tmp_path / "site2")
    assert rc == 2 and "tester/missing" in _one_line(err, "review") and not (tmp_path / "site2").exists()


def test_review_review_apply_and_eval_errors_name_their_command(annotated: Path, tmp_path: Path, capsys) -> None:
    rc, _, err = _run(capsys, "review", tmp_path / "nowhere", "--out", tmp_path / "site")
    assert rc == 2 and "nowhere" in _one_line(err, "review")
    bad = tmp_path / "d.json"
    bad.write_text("[]")
    rc, _, err = _run(capsys, "review-apply", bad, "--root", annotated, "--out", tmp_path / "o")
    assert rc == 2 and "not a review decisions file" in _one_line(err, "review-apply")
    rc, _, err = _run(capsys, "eval", tmp_path / "nope", "--reference", annotated)
    assert rc == 2 and "nope" in _one_line(err, "eval")
