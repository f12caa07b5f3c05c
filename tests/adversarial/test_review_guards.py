"""The review workbench against hostile input: a web page that writes to the local review server (cross-origin
POST, DNS rebinding, malformed requests), decisions applied to a dataset they were not made on, and `review
--out` pointed at a folder of the user's own files. Every hostile input is built here, byte by byte where the
protocol matters (raw HTTP requests with the headers a browser or an attacker sends)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from adversarial_helpers import one_error_line, tree_hash
from browser_helpers import chromium  # noqa: F401 (fixture)

from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.review import ReviewConfig, build_review

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 episodes x 1 camera, annotated with every style (synthetic rows)."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    base = tmp_path_factory.mktemp("review_guards")
    src = make_sample_dataset(base / "src", episodes=2, cameras=("front",), width=64, height=48,
                              episode_seconds=1.5, codec="h264")
    return write_language(src, synthetic_annotations(src), out=base / "annotated").root


@pytest.fixture(scope="module")
def site(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review_guards_site") / "site"
    build_review(annotated, out, config=ReviewConfig(workers=1, validate=False))
    return out


def _page_data(page: Path, element: str) -> dict:
    """The JSON a page's script reads (`site-data`, `episode-data`): what the page stamps into its decisions."""
    html = page.read_text()
    start = html.index(f'id="{element}">') + len(f'id="{element}">')
    return json.loads(html[start:html.index("</script>", start)])


def _page_decisions(site: Path, episodes: dict[int, dict]) -> dict:
    """A decisions file as the site's pages write it (episode decisions stamped with their page's digest)."""
    meta = _page_data(site / "index.html", "site-data")
    stamped = {str(e): {"rows": {}, **d, "annotations": _page_data(site / "episodes" / f"episode_{e:06d}.html",
                                                                   "episode-data").get("annotations")}
               for e, d in episodes.items()}
    return {"format": "lerobot_keyframes.review.decisions", "version": 1, "dataset": meta["dataset"],
            "dataset_id": meta.get("dataset_id"), "episodes": stamped}


class _Server:
    def __init__(self, site: Path) -> None:
        from lerobot_keyframes.review.serve import make_server

        self.server = make_server(site, port=0)
        self.port = self.server.server_address[1]
        self.token = getattr(self.server, "token", "")
        self.origin = f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                host: str | None = None) -> tuple[int, bytes]:
        """One raw request: exactly these headers (no Host or Content-Length added unless given)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders(body or None)
            r = conn.getresponse()
            self.headers = dict(r.getheaders())
            return r.status, r.read()
        finally:
            conn.close()

    def post(self, body: bytes, **headers: str) -> tuple[int, bytes]:
        return self.request("POST", "/api/decisions", body, {k.replace("_", "-"): v for k, v in headers.items()})


@pytest.fixture
def server(site: Path, tmp_path: Path) -> Iterator[_Server]:
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    s = _Server(copy)
    s.site = copy  # type: ignore[attr-defined]
    thread = threading.Thread(target=s.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def test_a_cross_origin_page_cannot_write_decisions(server: _Server, site: Path) -> None:
    saved = _page_decisions(site, {0: {"status": "approved"}})
    path = server.site / "decisions.json"  # type: ignore[attr-defined]
    path.write_text(json.dumps(saved))
    before = path.read_bytes()
    hostile = json.dumps(_page_decisions(site, {0: {"status": "rejected"}, 1: {"status": "rejected"}})).encode()
    n = str(len(hostile))
    # what a form or a no-cors fetch on another site sends: a "simple" request, no preflight
    assert server.post(hostile, Origin=EVIL, Content_Type="text/plain", Content_Length=n)[0] == 403
    # with the run's token (it cannot be read cross-origin, but even so) a foreign Origin is refused
    assert server.post(hostile, Origin=EVIL, Content_Type="application/json", Content_Length=n,
                       X_Review_Token=server.token)[0] == 403
    assert server.post(hostile, Sec_Fetch_Site="cross-site", Content_Type="application/json", Content_Length=n,
                       X_Review_Token=server.token)[0] == 403
    # this server's own origin, but no token (a page that guessed the port), or a wrong one
    assert server.post(hostile, Origin=server.origin, Content_Type="application/json", Content_Length=n)[0] == 403
    assert server.post(hostile, Origin=server.origin, Content_Type="application/json", Content_Length=n,
                       X_Review_Token="guess")[0] == 403
    # the token and origin, but a body that is not declared JSON
    assert server.post(hostile, Origin=server.origin, Content_Type="text/plain", Content_Length=n,
                       X_Review_Token=server.token)[0] == 415
    assert path.read_bytes() == before
    # the page itself (its origin, the token it was served with, JSON) may write
    status, body = server.post(hostile, Origin=server.origin, Content_Type="application/json", Content_Length=n,
                               X_Review_Token=server.token)
    assert status == 200, body
    assert json.loads(path.read_text())["episodes"]["1"]["status"] == "rejected"


def test_dns_rebinding_gets_nothing(server: _Server, site: Path) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 sends `Host: evil.example:PORT`."""
    rebound = f"evil.example:{server.port}"
    status, body = server.request("GET", "/index.html", host=rebound)
    assert status == 421 and b"Annotation review" not in body
    status, body = server.request("GET", "/api/decisions", host=rebound)
    assert status == 421 and b"episodes" not in body
    video = next((server.site / "videos").rglob("*.mp4")).relative_to(server.site).as_posix()  # type: ignore[attr-defined]
    assert server.request("GET", f"/{video}", host=rebound, headers={"Range": "bytes=0-99"})[0] == 421
    hostile = json.dumps(_page_decisions(site, {0: {"status": "rejected"}})).encode()
    status, _ = server.request("POST", "/api/decisions", hostile, host=rebound,
                               headers={"Origin": f"http://{rebound}", "Content-Type": "application/json",
                                        "Content-Length": str(len(hostile)), "X-Review-Token": server.token})
    assert status == 421 and not (server.site / "decisions.json").exists()  # type: ignore[attr-defined]
    assert server.request("GET", "/index.html", host=f"localhost:{server.port}")[0] == 200  # its own names work
    page = server.request("GET", "/index.html")[1]
    assert f'<meta name="review-token" content="{server.token}">'.encode() in page  # the page gets the token
    assert server.headers.get("X-Frame-Options") == "DENY"  # and no other page may frame it to click in it
    assert server.token.encode() in server.request("GET", "/")[1]  # also as the folder's index
    assert server.request("GET", "/videos/")[0] == 404  # no directory listings


@pytest.mark.parametrize("length, status", [("12abc", 400), ("-5", 400), ("", 411), ("0", 400),
                                            (str(10 ** 12), 413)])
def test_malformed_or_huge_requests_get_one_line(server: _Server, capfd: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture, length: str, status: int) -> None:
    headers = {"Origin": server.origin, "Content-Type": "application/json", "X-Review-Token": server.token}
    if length:
        headers["Content-Length"] = length
    got, body = server.request("POST", "/api/decisions", b'{"a": 1}', headers)
    assert got == status and len(json.loads(body)["error"].splitlines()) == 1
    assert server.request("GET", "/index.html")[0] == 200  # the server goes on
    _, err = capfd.readouterr()
    assert "Traceback" not in err and "Traceback" not in caplog.text
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0]


def test_the_server_binds_loopback_only(site: Path) -> None:
    from lerobot_keyframes.review.serve import make_server

    for host in ("0.0.0.0", "::", "192.168.1.10", "localhost.evil.example"):
        with pytest.raises(ValueError, match="loopback"):
            make_server(site, host=host, port=0)


def _annotated_variant(tmp_path: Path, name: str, episodes: int, drop_vqa_of: int | None = None) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    src = make_sample_dataset(tmp_path / f"{name}-src", episodes=episodes, cameras=("front",), width=64, height=48,
                              episode_seconds=1.5, codec="h264")
    anns = synthetic_annotations(src)
    if drop_vqa_of is not None:
        import dataclasses

        anns = [dataclasses.replace(a, events=tuple(r for r in a.events if r.style != "vqa"))
                if a.episode_index == drop_vqa_of else a for a in anns]
    return write_language(src, anns, out=tmp_path / name).root


def test_decisions_made_for_another_dataset_are_refused(site: Path, tmp_path: Path, cli) -> None:
    other = _annotated_variant(tmp_path, "other", episodes=3)
    before = tree_hash(other)
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps(_page_decisions(site, {0: {"status": "rejected"}})))
    rc, out, err = cli("review-apply", path, "--root", other, "--out", tmp_path / "reviewed")
    assert rc == 2, out
    line = one_error_line(err)
    assert line.startswith("lerobot-keyframes review-apply: error: ") and "made for another dataset" in line
    assert str(other) in line
    assert not (tmp_path / "reviewed").exists() and tree_hash(other) == before


def test_decisions_made_before_the_annotations_changed_are_refused(site: Path, annotated: Path, tmp_path: Path,
                                                                   cli) -> None:
    # the same recording, annotated again: episode 0 lost its VQA rows since the site was built
    changed = _annotated_variant(tmp_path, "changed", episodes=2, drop_vqa_of=0)
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps(_page_decisions(site, {0: {"status": "rejected"}, 1: {"status": "approved"}})))
    rc, out, err = cli("review-apply", path, "--root", changed, "--out", tmp_path / "reviewed")
    assert rc == 2, out
    line = one_error_line(err)
    assert "annotations of episode(s) [0]" in line and "not the ones reviewed" in line
    assert not (tmp_path / "reviewed").exists()
    # on the dataset they were made on, the same decisions apply
    rc, out, err = cli("review-apply", path, "--root", annotated, "--out", tmp_path / "reviewed")
    assert rc == 0, err
    legacy = json.loads(path.read_text())
    del legacy["dataset_id"]  # a file of an older site: it says nothing about its dataset
    path.write_text(json.dumps(legacy))
    rc, _, err = cli("review-apply", path, "--root", annotated, "--out", tmp_path / "again")
    assert rc == 2 and "does not record the dataset" in one_error_line(err)


def test_review_out_refuses_a_folder_it_did_not_create(annotated: Path, tmp_path: Path, cli) -> None:
    mine = tmp_path / "my-website"
    (mine / "assets").mkdir(parents=True)
    (mine / "episodes").mkdir()
    (mine / "index.html").write_text("<h1>my own page</h1>")
    (mine / "assets" / "logo.png").write_bytes(b"\x89PNG my logo")
    (mine / "episodes" / "notes.txt").write_text("my notes")
    before = tree_hash(mine)
    rc, out, err = cli("review", annotated, "--out", mine, "--workers", "1", "--validate", "false")
    assert rc == 2, out
    line = one_error_line(err)
    assert line.startswith("lerobot-keyframes review: error: ") and "not a review site" in line
    assert tree_hash(mine) == before
    (tmp_path / "a-file").write_text("x")
    rc, _, err = cli("review", annotated, "--out", tmp_path / "a-file", "--workers", "1")
    assert rc == 2 and "is a file" in one_error_line(err)
    # a new folder, an empty one, and a site built before are fine
    empty = tmp_path / "empty"
    empty.mkdir()
    for out_dir in (tmp_path / "new", empty, tmp_path / "new"):
        rc, _, err = cli("review", annotated, "--out", out_dir, "--workers", "1", "--validate", "false",
                         "--episodes", "0")
        assert rc == 0, err
        assert (out_dir / "index.html").is_file()


def test_review_refuses_a_root_with_an_interrupted_in_place_write(annotated: Path, tmp_path: Path, cli) -> None:
    import shutil

    from lerobot_keyframes.language.journal import JOURNAL_DIR

    root = tmp_path / "root"
    shutil.copytree(annotated, root, symlinks=True)
    (root / JOURNAL_DIR / "new" / "meta").mkdir(parents=True)
    (root / JOURNAL_DIR / "new" / "meta" / "info.json").write_text("{}")
    (root / JOURNAL_DIR / "journal.json").write_text(json.dumps({"state": "committed", "files": ["meta/info.json"]}))
    before = tree_hash(root)
    rc, _, err = cli("review", root, "--out", tmp_path / "site", "--workers", "1")
    assert rc == 2 and "interrupted" in one_error_line(err)
    assert tree_hash(root) == before and not (tmp_path / "site").exists()


EVIL_PAGE = """<!DOCTYPE html><html><body><script>
var body = JSON.stringify(DECISIONS), url = 'REVIEW/api/decisions', done = [];
function note(what){ return function(r){ done.push(what + ':' + (r && r.type ? r.type + ' ' + r.status : String(r))); }; }
Promise.all([
  // a simple request: no preflight, the browser sends it and hides the answer (what the issue reproduced)
  fetch(url, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: body})
    .then(note('no-cors'), note('no-cors')),
  // JSON and a guessed token: a preflighted request, which the server grants no CORS for
  fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Review-Token': 'guess'}, body: body})
    .then(note('cors'), note('cors')),
  // reading the decisions (or the token in a page) cross-origin
  fetch('REVIEW/index.html').then(function(r){ return r.text(); }).then(note('read'), note('read')),
]).then(function(){ document.title = 'done ' + done.join(' | '); });
</script></body></html>"""


def test_a_page_on_another_origin_in_a_real_browser_changes_nothing(server: _Server, site: Path, tmp_path: Path,
                                                                   chromium) -> None:  # noqa: F811 (fixture)
    """The attack of the issue, run by Chromium: a page on another origin posts decisions to the review server."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from browser_helpers import wait_for
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    saved = _page_decisions(site, {0: {"status": "approved"}})
    path = server.site / "decisions.json"  # type: ignore[attr-defined]
    path.write_text(json.dumps(saved))
    before = path.read_bytes()
    hostile = _page_decisions(site, {0: {"status": "rejected"}, 1: {"status": "rejected"}})
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    (evil_dir / "evil.html").write_text(EVIL_PAGE.replace("REVIEW", server.origin)
                                        .replace("DECISIONS", json.dumps(hostile)))
    evil = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(evil_dir)))
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    drv = webdriver.Chrome(options=options, service=Service(executable_path=chromium[1]))
    try:
        drv.get(f"http://localhost:{evil.server_address[1]}/evil.html")  # another origin (host and port differ)
        title = wait_for(lambda: drv.title if drv.title.startswith("done") else None, what="the evil page's requests")
        assert "read:TypeError" in title and "cors:TypeError" in title, title  # no CORS grant: nothing read
    finally:
        drv.quit()
        evil.shutdown()
        evil.server_close()
    assert path.read_bytes() == before


def test_deeply_nested_decisions_are_refused_in_one_line_not_a_recursion_error(site: Path, annotated: Path,
                                                                              tmp_path: Path, cli) -> None:
    before = tree_hash(annotated)
    path = tmp_path / "decisions.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # 200 kB: json.loads raises RecursionError on it
    rc, _, err = cli("review-apply", path, "--root", annotated, "--out", tmp_path / "reviewed")
    assert rc == 2
    line = one_error_line(err)
    assert str(path) in line and "nested" in line
    assert not (tmp_path / "reviewed").exists() and tree_hash(annotated) == before


def test_a_deeply_nested_post_is_a_bad_request(server: _Server, caplog: pytest.LogCaptureFixture) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = server.post(body, Origin=server.origin, Content_Type="application/json",
                                 Content_Length=str(len(body)), X_Review_Token=server.token)
    assert status == 400 and "nested" in json.loads(answer)["error"]
    assert "RecursionError" not in caplog.text and not (server.site / "decisions.json").exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("marker", ["{}", "", "not json", '{"format": "something.else"}'])
def test_a_stray_site_marker_does_not_make_a_users_folder_a_site(annotated: Path, tmp_path: Path, cli,
                                                                 marker: str) -> None:
    from lerobot_keyframes.review.build import SITE_MARKER

    mine = tmp_path / "mine"
    (mine / "episodes").mkdir(parents=True)
    (mine / "episodes" / "notes.txt").write_text("my notes")
    (mine / SITE_MARKER).write_text(marker)  # copied along from elsewhere, or emptied: not a build's marker
    before = tree_hash(mine)
    rc, _, err = cli("review", annotated, "--out", mine, "--workers", "1", "--validate", "false")
    assert rc == 2 and "not a review site" in one_error_line(err)
    assert tree_hash(mine) == before
