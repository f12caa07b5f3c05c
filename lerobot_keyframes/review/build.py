"""Building the review site: decode frames (one batched call per episode and camera), link the videos, render.

Layout of OUT: `index.html`, `episodes/episode_NNNNNN.html`, `static/` (CSS and scripts), `assets/` (JPEG
thumbnails and VQA frames),
`videos/` (the dataset's mp4 files at their dataset paths, hard-linked when OUT is on the same file system,
else copied; every episode page plays its slice of them), `timelines/` (`--png`), and `decisions.json` once
a reviewer saves through `--serve`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..language.journal import check_no_pending_write
from ..language.validator import EpisodeAnnotations
from ..utils.files import atomic_write_json
from ..utils.timeline import split_evenly
from .config import ReviewConfig, VideoMode
from .identity import annotations_digest, dataset_identity
from .images import camera_slug, decode_episode_images, episode_dir_name, spread
from .model import EpisodeView, episode_view
from .render import render_episode_page, render_index, write_static

if TYPE_CHECKING:
    from ..frames.provider import FrameProvider

logger = logging.getLogger(__name__)

_MIN_AUTO_PARALLEL = 6  # episodes; below this a process pool costs more than it saves
PROVENANCE_FILE = "meta/annotation_provenance.json"


@dataclass(frozen=True)
class _Job:
    row: dict[str, Any]
    ann: EpisodeAnnotations | None
    timestamps: np.ndarray
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    prev_ep: int | None
    next_ep: int | None
    quality: tuple[dict[str, Any], ...] = ()  # the run's quality findings (provenance "quality")


@dataclass(frozen=True)
class _Shared:
    """What every page of one build shares."""

    attention: tuple[int, ...]
    site: dict[str, Any]
    videos: bool


def _videos_of(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": c["key"], "slug": camera_slug(c["key"]), "src": f"../{video_site_path(c['path'])}",
             "from": float(c["from_timestamp"]), "width": c.get("width"), "height": c.get("height")}
            for c in row.get("cameras") or [] if c.get("storage") == "video"]


def video_site_path(rel: str) -> str:
    """Where the site keeps a dataset video (`videos/...` in the dataset -> `videos/...` in the site)."""
    return "videos/" + rel.removeprefix("videos/")


def _render_one(job: _Job, provider: FrameProvider | None, out: Path, config: ReviewConfig, png: bool,
                shared: _Shared) -> dict[str, Any]:
    view = episode_view(job.row, job.ann, job.timestamps, errors=job.errors, warnings=job.warnings,
                        quality=job.quality)
    name = episode_dir_name(view.episode_index)
    assets = out / "assets" / name
    images = decode_episode_images(view, provider, job.row, assets, config)
    n = len(view.timestamps)
    png_rel = None
    if png:
        from .timeline import render_timeline_png

        lanes = []
        for cam in view.cameras:
            pil = images.get(cam["key"], {}).get("pil", {})
            thumbs = [(float(view.timestamps[i]), pil[i]) for i in spread(0, n, config.thumbs_per_camera) if i in pil]
            if thumbs:
                lanes.append((camera_slug(cam["key"]), thumbs))
        render_timeline_png(view, lanes, out / "timelines" / f"{name}.png")
        png_rel = f"../timelines/{name}.png"
    page = render_episode_page(view, images, config, prev_ep=job.prev_ep, next_ep=job.next_ep, png=png_rel,
                               assets_rel=f"../assets/{name}", videos=_videos_of(job.row) if shared.videos else (),
                               attention=shared.attention, site=shared.site,
                               annotations=annotations_digest(job.ann, job.timestamps))
    (out / "episodes" / f"{name}.html").write_text(page, encoding="utf-8")
    return {"episode_index": view.episode_index, "task": view.task, "frames": n, "duration": view.duration,
            "counts": view.counts, "errors": len(view.errors), "warnings": len(view.warnings),
            "quality": len(view.quality), "quality_kinds": sorted({str(f.get("kind")) for f in view.quality}),
            "text": _search_text(view)}


def _search_text(view: EpisodeView, limit: int = 4000) -> str:
    """The episode's words for the index's text filter: labels, rephrasings, plans, memory, speech (no VQA JSON)."""
    seen: dict[str, None] = {}
    for s in view.spans:
        seen.setdefault(s.label)
    for t in view.task_aug:
        seen.setdefault(t)
    for m in view.marks:
        seen.setdefault(m.text)
    return " | ".join(seen)[:limit]


def _render_chunk(jobs: Sequence[_Job], out: Path, config: ReviewConfig, png: bool, shared: _Shared,
                  progress: bool = False) -> list[dict[str, Any]]:
    """Render some episodes with one frame provider (its decoders stay open across neighbouring episodes)."""
    from ..frames import make_frame_provider

    provider = None
    if any(j.row.get("cameras") for j in jobs):
        provider = make_frame_provider([j.row for j in jobs], video_backend=config.video_backend, on_error="none",
                                       cache_mb=0, video_access=config.video_access)  # every frame asked once
    try:
        from tqdm.auto import tqdm

        return [_render_one(j, provider, out, config, png, shared)
                for j in tqdm(jobs, desc="review", unit="episode", disable=None if progress else True)]
    finally:
        if provider is not None and hasattr(provider, "close"):
            provider.close()


def _render_pool(jobs: Sequence[_Job], out: Path, config: ReviewConfig, png: bool, shared: _Shared,
                 n_workers: int) -> list[dict[str, Any]]:
    """Contiguous runs of episodes (so a worker's decoders keep their files open) over a process pool."""
    from concurrent.futures import as_completed

    from tqdm.auto import tqdm

    if config.video_backend in ("auto", "torchcodec"):  # import the decoder library once, before forking
        from ..frames.decoders.base import torchcodec_available

        torchcodec_available()
    chunks = [jobs[a:b] for a, b in split_evenly(len(jobs), n_workers * 2)]
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    results: dict[int, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool, \
            tqdm(total=len(jobs), desc="review", unit="episode", disable=None) as bar:
        futures = {pool.submit(_render_chunk, chunk, out, config, png, shared): k for k, chunk in enumerate(chunks)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update(len(results[futures[fut]]))
    return [s for k in sorted(results) for s in results[k]]


def _workers(config: ReviewConfig, n: int) -> int:
    if config.workers:
        return max(1, min(config.workers, n))
    if n < _MIN_AUTO_PARALLEL:
        return 1
    return max(1, min(4, os.cpu_count() or 1, n))


def link_videos(root: Path, out: Path, rel_paths: Iterable[str], mode: VideoMode,
                sources: Mapping[str, Path] | None = None) -> int:
    """Put the dataset's video files under `out/videos/` (hard link, else copy); returns bytes copied.
    `sources`: where a video the root lacks was downloaded (a Hub source's file in the Hugging Face cache).

    Never writes into `root`: a file already at the destination is kept when it is the same file or has the
    same size (a rebuild), else replaced.
    """
    copied = 0
    for rel in sorted(set(rel_paths)):
        src, dst = (sources or {}).get(rel, root / rel), out / video_site_path(rel)
        if not src.is_file():
            hint = " (its source is on the Hub: --video_access=auto or download puts it in the player)" if sources is not None \
                else ""
            logger.warning("video %s is missing; its episodes play nothing%s", src, hint)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            if os.path.samefile(src, dst) or (mode == "copy" and dst.stat().st_size == src.stat().st_size):
                continue
            dst.unlink()
        if mode == "link":
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        shutil.copyfile(src, dst)
        copied += src.stat().st_size
    return copied


def quality_findings(provenance: Mapping[str, Any]) -> dict[int, tuple[dict[str, Any], ...]]:
    """The annotate run's quality findings per episode (provenance "quality": {"3": [finding dicts]})."""
    raw = provenance.get("quality")
    out: dict[int, tuple[dict[str, Any], ...]] = {}
    for key, items in (raw.items() if isinstance(raw, dict) else ()):
        try:
            e = int(key)
        except (TypeError, ValueError):
            continue
        found = tuple(f for f in items if isinstance(f, dict)) if isinstance(items, list) else ()
        if found:
            out[e] = found
    return out


def _read_missing_videos_from_the_source(root: Path, rows: Sequence[dict[str, Any]], provenance: Mapping[str, Any]
                                         ) -> None:
    """An annotated root written from a streamed Hub source may lack the videos: its rows then name the source
    repo and commit the run read (provenance `source_repo_id`, `source_commit`), so frames come from there."""
    repo, commit = provenance.get("source_repo_id"), provenance.get("source_commit")
    if not repo or not commit:
        return
    for row in rows:
        if any(c["storage"] == "video" and not (root / c["path"]).is_file() for c in row["cameras"]):
            row["repo_id"], row["revision"] = repo, commit


def _downloaded_sources(root: Path, rows: Sequence[Mapping[str, Any]], config: ReviewConfig) -> dict[str, Path] | None:
    """The Hub source's copies of the videos the root lacks, downloaded whole for the player (it plays whole
    files, so `auto` downloads them; `stream` leaves the player without video and decodes only the thumbnails
    by byte range); None when the root's videos are all there or it names no Hub source."""
    from ..dataset.remote import download_whole, hub_file

    missing = {(c["path"], r.get("repo_id"), r.get("revision")) for r in rows for c in r["cameras"]
               if c["storage"] == "video" and not (root / c["path"]).is_file()}
    files = {path: hub_file(repo, root, path, revision) for path, repo, revision in missing}
    files = {path: f for path, f in files.items() if f is not None}
    if not files:
        return None
    if config.video_access == "stream":
        return {}
    return {path: Path(download_whole(f, "the review player plays whole files (--video_access=stream: thumbnails only)"))
            for path, f in sorted(files.items())}


def read_provenance(root: Path) -> dict[str, Any]:
    path = root / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


SITE_MARKER = ".lerobot_keyframes_review.json"  # in OUT: this folder is a review site (rebuilds may replace it)
SITE_FORMAT = "lerobot_keyframes.review.site"


def _is_site(out: Path) -> bool:
    """Whether `out` holds the marker a build writes (a stray or empty file of that name does not count)."""
    try:
        marker = json.loads((out / SITE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(marker, dict) and marker.get("format") == SITE_FORMAT


def check_site_folder(out: Path) -> None:
    """Refuse to build into a folder that is neither new, empty, nor a review site built before.

    A rebuild replaces `index.html`, `episodes/`, `assets/`, `timelines/` and `static/`: in any other folder
    those may be the user's own files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"review output {out} is a file, not a folder; choose a new or empty folder")
    if _is_site(out):
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise FileExistsError(f"review output {out} is not empty and is not a review site built by lerobot-keyframes "
                              f"(no {SITE_MARKER}; it holds {shown}); choose a new or empty folder")


def require_png_renderer() -> None:
    """`png=True` draws with matplotlib, an optional dependency: fail before any decoding if it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("timeline PNGs (--png) need matplotlib, which is not installed: pip install "
                          "'lerobot_keyframes[review]' (or pip install matplotlib), or leave out --png") from exc


def build_review(root: str | Path, out: str | Path, *, episodes: Iterable[int] | None = None, png: bool = False,
                 config: ReviewConfig | None = None, revision: str | None = None) -> Path:
    """Write the review site of the annotated dataset at `root` into `out`; returns `out/index.html`.

    `root` is a local dataset root or a Hub dataset repo id (`user/name`, at `revision`; its meta, data and the
    chosen episodes' videos are downloaded into the Hugging Face cache). `out` must be new, empty or a site
    built before: its `index.html`, `episodes/`, `assets/` and `timelines/` are replaced, `videos/` is
    refreshed and a reviewer's `decisions.json` is kept.
    """
    from ..dataset.episodes import build_episode_rows
    from ..dataset.layout import DatasetLayout, check_output_separate
    from ..dataset.source import is_local, resolve_source
    from ..language.validator import read_dataset_annotations, validate_dataset

    config = config or ReviewConfig()
    out = Path(out)
    if png:
        require_png_renderer()
    if is_local(root):  # the site's folders are replaced: never the dataset's
        check_output_separate(root, out, what="review output")
    check_site_folder(out)
    source = resolve_source(root, revision=revision)
    root = source.root
    check_output_separate(root, out, what="review output")
    check_no_pending_write(root, action='review')
    selected = sorted(set(episodes)) if episodes is not None else None
    layout = DatasetLayout.open(root)
    rows = build_episode_rows(layout, episodes=selected)
    if not rows:
        raise ValueError(f"{root}: no episodes to review (asked for {selected})")
    provenance = read_provenance(root)
    _read_missing_videos_from_the_source(root, rows, provenance)
    anns, times = read_dataset_annotations(root, episodes=selected)
    by_episode: Mapping[int | None, Mapping[str, list[Any]]] = {}
    if config.validate:
        by_episode = validate_dataset(root, episodes=selected).by_episode()
    dataset_issues = [f"{i.level}: {i}" for lst in (by_episode.get(None) or {}).values() for i in lst]
    name = f"{source.repo_id}@{source.revision}" if source.repo_id else str(root)
    site = {"dataset": name, "dataset_id": dataset_identity(layout.info)}
    _reset_site(root, out, rows, config, png, site)
    jobs = _jobs(rows, anns, times, by_episode, quality_findings(provenance))
    attention = tuple(j.row["episode_index"] for j in jobs if j.errors or j.warnings or j.quality)
    shared = _Shared(attention, site, config.videos != "none")
    n_workers = _workers(config, len(jobs))
    if n_workers == 1:
        summaries = _render_chunk(jobs, out, config, png, shared, progress=True)
    else:
        summaries = _render_pool(jobs, out, config, png, shared, n_workers)
    index = out / "index.html"
    model = provenance.get("model_id")
    index.write_text(render_index(summaries, root=root, dataset_issues=dataset_issues, validated=config.validate,
                                  model=str(model) if model else None, site=site), encoding="utf-8")
    logger.info("review of %d episodes written to %s", len(summaries), index)
    from ..dataset.remote import log_summary

    log_summary()
    return index


def _reset_site(root: Path, out: Path, rows: Sequence[Mapping[str, Any]], config: ReviewConfig, png: bool,
                site: Mapping[str, Any]) -> None:
    """Mark `out` as a review site, empty its generated folders, write the static files and link the videos."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SITE_MARKER, {"format": SITE_FORMAT, **site})
    for sub in ("episodes", "assets", "timelines", "static"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    write_static(out)
    if png:
        (out / "timelines").mkdir(parents=True, exist_ok=True)
    if config.videos != "none":
        link_videos(root, out, [c["path"] for r in rows for c in r["cameras"] if c["storage"] == "video"],
                    config.videos, sources=_downloaded_sources(root, rows, config))


def _jobs(rows: Sequence[Mapping[str, Any]], anns: Mapping[int, EpisodeAnnotations], times: Mapping[int, np.ndarray],
          by_episode: Mapping[int | None, Mapping[str, list[Any]]],
          quality: Mapping[int, tuple[dict[str, Any], ...]]) -> list[_Job]:
    """One render job per episode, with its validator findings and its neighbours for the prev/next links."""
    order = [int(r["episode_index"]) for r in rows]
    jobs = []
    for k, r in enumerate(rows):
        e = int(r["episode_index"])
        issues = by_episode.get(e) or {}
        jobs.append(_Job(dict(r), anns.get(e), times.get(e, np.asarray(r["timestamps"], dtype=np.float32)),
                         tuple(str(i) for i in issues.get("errors", [])),
                         tuple(str(i) for i in issues.get("warnings", [])),
                         order[k - 1] if k > 0 else None, order[k + 1] if k + 1 < len(order) else None,
                         quality.get(e, ())))
    return jobs
