"""Every writer to the Hub, against the local Hub (a real HTTP server): one guard before anything is sent.

Issue 22: a push never costs an episode its language rows or the repo its language columns (unless
--allow_row_loss=true), never overwrites a repo that may be the root's source even when the provenance does not
name it, never sends a root whose in-place write was killed midway, and nothing pushed holds a path of this
machine. Issue 21: a streamed source is published as a pull request (data + meta, no video) or as a new root whose
videos are fetched whole. Each test builds its hostile input itself.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from adversarial_helpers import one_error_line

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.annotate import run_annotation  # noqa: E402
from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig  # noqa: E402
from lerobot_keyframes.hub.push import push_dataset  # noqa: E402
from lerobot_keyframes.testing.local_hub import LocalHub, iter_repo_files  # noqa: E402
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers, prompt_text  # noqa: E402
from lerobot_keyframes.vlm.config import VlmConfig  # noqa: E402

pytest_plugins = ("hub_fixtures",)  # local_hub
VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")


def _config(**kw) -> AnnotateConfig:
    return AnnotateConfig(plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def _failing(tasks: list[str]):
    """Answers plausibly, except a wrong shape for every prompt about one of `tasks` (those episodes fail)."""
    def respond(conversation, schema):
        if any(t in prompt_text(conversation) for t in tasks):
            return {"nonsense": True}
        return plausible_answers(conversation, schema)
    return respond


def _state(local_hub: LocalHub, repo: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(head of main, tags, pull requests) of a repo: what a refused push must leave as it was."""
    r = local_hub.repo(repo)
    return r.branches["main"], dict(r.tags), dict(r.pull_requests)


def _separate_videos(path: Path) -> Path:
    """2 episodes, each in its own mp4 and data file (a streamed source lacks the videos of some episodes)."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(path, episodes=2, cameras=("front",), width=64, height=48, episode_seconds=1.0,
                               codec="h264", max_video_file_mb=0.001, episodes_per_data_file=1)


@pytest.fixture
def annotated_repo(local_hub: LocalHub, tiny: Path, tmp_path: Path) -> tuple[str, Path]:
    """`tester/annotated`: the annotated copy of the local root `tiny`, pushed by this package."""
    out = tmp_path / "annotated"
    result = run_annotation(_config(root=tiny, out=out), VLM, vlm=ScriptedBackend(plausible_answers))
    assert result.failures == {} and result.validation.ok
    push_dataset(out, "tester/annotated")
    return "tester/annotated", out


# -- rows ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["push", "pull_request"])
def test_a_failed_run_never_wipes_the_rows_of_an_annotated_repo(local_hub: LocalHub, annotated_repo, tiny: Path,
                                                               tmp_path: Path, cli, how: str) -> None:
    repo, _ = annotated_repo
    failed = tmp_path / "failed"  # a fresh run where episode 1 failed: its rows are not in this root
    task1 = h.episode_tasks(tiny)[1]
    result = run_annotation(_config(root=tiny, out=failed), VLM, vlm=ScriptedBackend(_failing([task1])))
    assert list(result.failures) == [1] and h.rows_by_episode(failed)[1] == []
    before = _state(local_hub, repo)
    flags = ["push", f"--root={failed}", f"--new_repo_id={repo}"] + (["--create_pr=true"] if how != "push" else [])
    rc, _, err = cli(*flags)
    assert rc == 2
    line = one_error_line(err)
    assert "episode 1: " in line and "-> 0" in line and "--allow_row_loss=true" in line
    assert _state(local_hub, repo) == before  # main, the v3.0 tag and the pull requests: untouched
    rc, out, err = cli(*flags, "--allow_row_loss=true")  # asked for explicitly
    assert rc == 0, err
    assert _state(local_hub, repo) != before


def test_a_plain_copy_never_replaces_an_annotated_repo(local_hub: LocalHub, annotated_repo, tiny: Path, cli) -> None:
    repo, _ = annotated_repo
    before = _state(local_hub, repo)
    rc, _, err = cli("push", f"--root={tiny}", f"--new_repo_id={repo}")  # the unannotated dataset itself
    assert rc == 2
    line = one_error_line(err)
    assert "language_persistent" in line and "drop its language annotations" in line
    assert _state(local_hub, repo) == before


def test_the_rows_guard_reads_only_the_changed_shards_by_byte_range(local_hub: LocalHub, annotated_repo,
                                                                    tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from lerobot_keyframes.hub.push.guard import Remote, row_loss
    from lerobot_keyframes.hub.push.remote import list_remote

    repo, out = annotated_repo
    api = HfApi()
    head = local_hub.repo(repo).branches["main"]
    remote = Remote(repo, head, list_remote(api, repo, head, None))
    seen = len(local_hub.requests)
    assert not row_loss(api, out, remote)  # the same root: no data shard is read on the Hub
    assert not [r for r in local_hub.requests[seen:] if "/data/" in r.path]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = next(p for p in (copy / "data").rglob("*.parquet"))
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    pq.write_table(table.filter(pc.not_equal(table["episode_index"], 1)), shard)  # episode 1's frames and rows gone
    seen = len(local_hub.requests)
    loss = row_loss(api, copy, remote)
    assert list(loss.episodes) == [1] and loss.episodes[1][1] == 0
    reads = [r for r in local_hub.requests[seen:] if "/data/" in r.path and r.method == "GET"]
    assert reads and all(r.route == "resolve" for r in reads)  # the changed shard, read from the Hub


# -- the source ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["no_source_fields", "identity_only", "their_dataset_copied_locally"])
def test_push_never_overwrites_the_source_when_the_provenance_lacks_it(local_hub: LocalHub, tiny: Path,
                                                                       tmp_path: Path, cli, case: str) -> None:
    from huggingface_hub import HfApi, snapshot_download

    out = tmp_path / "annotated"
    if case == "their_dataset_copied_locally":  # someone's dataset, downloaded to a folder, annotated locally
        src = "tester/theirs"
        HfApi().create_repo(src, repo_type="dataset")
        HfApi().upload_folder(repo_id=src, folder_path=str(tiny), repo_type="dataset")  # not published by us
        copy = Path(snapshot_download(src, repo_type="dataset", local_dir=str(tmp_path / "download")))
        shutil.rmtree(copy / ".cache", ignore_errors=True)
        run_annotation(_config(root=copy, out=out), VLM, vlm=ScriptedBackend(plausible_answers))
    else:
        src = "tester/src"
        push_dataset(tiny, src)
        run_annotation(_config(repo_id=src, out=out), VLM, vlm=ScriptedBackend(plausible_answers))
        record = h.provenance(out)
        assert record["source"] == "tester/src@v3.0"
        drop = ["source_repo_id", "source_revision", "source"]
        if case == "no_source_fields":
            drop.append("source_identity")
        (out / "meta/annotation_provenance.json").write_text(json.dumps({k: v for k, v in record.items()
                                                                          if k not in drop}))
    before = _state(local_hub, src)
    rc, _, err = cli("push", f"--root={out}", f"--new_repo_id={src}")
    assert rc == 2
    line = one_error_line(err)
    assert src in line and ("may be the dataset it was made from" in line or "it is the source dataset" in line)
    assert _state(local_hub, src) == before
    rc, _, err = cli("push", f"--root={out}", f"--new_repo_id={src}", "--allow_source_overwrite=true")
    assert rc == 0, err  # asked for explicitly
    rc, _, err = cli("push", f"--root={out}", "--new_repo_id=tester/copy")  # a new repo is never the source
    assert rc == 0, err


def test_an_annotated_copy_is_updated_by_its_own_root(local_hub: LocalHub, annotated_repo, tiny: Path, cli) -> None:
    repo, out = annotated_repo
    run_annotation(_config(root=tiny, out=out, seed=5), VLM, vlm=ScriptedBackend(plausible_answers))
    rc, _, err = cli("push", f"--root={out}", f"--new_repo_id={repo}")  # same source identity: allowed
    assert rc == 0, err


# -- the journal -----------------------------------------------------------------------------------------------
WRITE = """
import sys
from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
write_language(sys.argv[1], synthetic_annotations(sys.argv[1]), in_place=True)
"""


def test_a_root_killed_mid_swap_is_neither_pushed_nor_read(local_hub: LocalHub, tmp_path: Path, cli) -> None:
    victim = _separate_videos(tmp_path / "victim")  # two data shards: the kill leaves one new, one old
    proc = h.run_cli([sys.executable, "-c", WRITE, str(victim)], LEROBOT_KEYFRAMES_CRASH_AT="journal.swap:1")
    assert proc.returncode != 0
    info = json.loads((victim / "meta/info.json").read_text())
    assert "language_persistent" not in info["features"]  # info.json still old, a data shard already new
    rc, _, err = cli("push", f"--root={victim}", "--new_repo_id=tester/half")
    assert rc == 2
    line = one_error_line(err)
    assert str(victim) in line and "interrupted" in line and "recover_interrupted_write" in line
    assert not local_hub.has_repo("tester/half")
    from lerobot_keyframes.language import (
        PendingWriteError,
        check_no_pending_write,
        recover_interrupted_write,
    )

    with pytest.raises(PendingWriteError, match="interrupted"):  # what the review reader calls
        check_no_pending_write(victim)
    assert recover_interrupted_write(victim) == "rolled_forward"
    check_no_pending_write(victim)
    rc, _, err = cli("push", f"--root={victim}", "--new_repo_id=tester/half")
    assert rc == 0, err


# -- no path of this machine -----------------------------------------------------------------------------------
def _pushed_text(local_hub: LocalHub, repo: str) -> dict[str, str]:
    return {p: local_hub.read_file(repo, p).decode("utf-8", "replace") for p in iter_repo_files(local_hub, repo)
            if p.startswith("meta/") or p == "README.md" or p.endswith(".json")}


def test_pushed_provenance_and_card_hold_no_path_of_this_machine(local_hub: LocalHub, tiny: Path,
                                                                  tmp_path: Path) -> None:
    model = tmp_path / "models" / "qwen-local"  # a model loaded from a folder
    model.mkdir(parents=True)
    out = tmp_path / "annotated"
    run_annotation(_config(root=tiny, out=out, push_to_hub=True, new_repo_id="tester/pub"),
                   VlmConfig(backend="openai", model_id=str(model)), vlm=ScriptedBackend(plausible_answers))
    record = json.loads(local_hub.read_file("tester/pub", "meta/annotation_provenance.json"))
    assert record["source"].startswith("local:sha256:") and record["source"] == record["source_identity"]
    assert record["model_id"].startswith("local:sha256:") and record["model_name"] == "qwen-local"
    for path, text in _pushed_text(local_hub, "tester/pub").items():
        assert str(tmp_path) not in text, path

    # a root written by an older version (paths in its provenance) is made public by the push itself
    legacy = {**record, "source_identity": f"local:{tiny}", "model_id": str(model),
              "kept_rows_origin": {"source": str(tiny), "note": "rows present before any lerobot_keyframes run"},
              "failed_episodes": {"1": f"{tiny}/videos/observation.images.front/chunk-000/file-000.mp4: episode 1, "
                                       "camera 'observation.images.front': no frame at 0.5 s"},
              "notes": [f"see {tmp_path}/elsewhere/log.txt"]}
    del legacy["source"]
    (out / "meta/annotation_provenance.json").write_text(json.dumps(legacy))
    push_dataset(out, "tester/pub2", provenance=legacy)
    pushed = _pushed_text(local_hub, "tester/pub2")
    for path, text in pushed.items():
        assert str(tmp_path) not in text, path
    record = json.loads(pushed["meta/annotation_provenance.json"])
    assert record["source"].startswith("local:sha256:") and record["kept_rows_origin"]["source"].startswith("local:")
    assert record["failed_episodes"]["1"].startswith("<local>/file-000.mp4: episode 1")
    assert "<local>/log.txt" in record["notes"][0]
    assert (out / "meta/annotation_provenance.json").read_bytes() == local_hub.read_file(
        "tester/pub2", "meta/annotation_provenance.json")  # the root and the repo stay identical


def test_a_provenance_file_given_to_push_leaves_its_secrets_and_paths_at_home(local_hub: LocalHub, tiny: Path,
                                                                              tmp_path: Path, cli) -> None:
    out = tmp_path / "annotated"
    run_annotation(_config(root=tiny, out=out), VLM, vlm=ScriptedBackend(plausible_answers))
    key, hub_token = "sk-" + "q" * 40, "hf_" + "Z" * 34
    record = json.loads((out / "meta/annotation_provenance.json").read_text())
    record |= {"vlm": {"api_key": "k3y-without-a-shape", "api_base": "http://127.0.0.1:8000/v1"},
               "hf_token": hub_token, "notes": [f"served with {key}", f"copied from local:{tmp_path}/private/set"],
               "prompt_tokens": 123}
    given = tmp_path / "provenance.json"  # a user's own file, written by hand or by another tool
    given.write_text(json.dumps(record))
    rc, _, err = cli("push", str(out), "--new_repo_id=tester/given", f"--provenance={given}")
    assert rc == 0, err
    pushed = _pushed_text(local_hub, "tester/given")
    for path, text in pushed.items():
        for secret in ("k3y-without-a-shape", key, hub_token, str(tmp_path)):
            assert secret not in text, (path, secret)
    card = pushed["README.md"]  # the card's provenance section keeps the given record as JSON
    for kept in ('"api_key": "<redacted>"', '"api_base": "http://127.0.0.1:8000/v1"', '"hf_token": "<redacted>"',
                 '"prompt_tokens": 123', '"served with <redacted>"', '"copied from local:sha256:'):
        assert kept in card, kept


def test_keyframes_tables_pushed_hold_no_path_of_this_machine(local_hub: LocalHub, tiny: Path, tmp_path: Path,
                                                              cli) -> None:
    import datasets

    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.transform import KeyframeTransform

    rc, _, err = cli("keyframes", tiny, "--push_to_hub=true", "--new_repo_id=tester/kf", "--policy=uniform:2",
                     "--use_cache=false")
    assert rc == 0, err
    for path in iter_repo_files(local_hub, "tester/kf"):
        assert str(tmp_path).encode() not in local_hub.read_file("tester/kf", path), path
    back = datasets.load_dataset("tester/kf", split="train")
    assert "root" not in back.column_names
    files = {b["file"] for m in back["messages"] for msg in m for b in msg["content"] if b["file"]}
    assert files == {"videos/observation.images.front/chunk-000/file-000.mp4"}

    # the library way: the table itself stores root-relative files; publishable_table drops the root column
    from lerobot_keyframes.hub import publishable_table

    episodes = load_episodes(tiny)
    table = KeyframeTransform.for_dataset(episodes, policy="uniform:2").map(episodes, use_cache=False)
    assert {b["file"] for m in table["messages"] for msg in m for b in msg["content"] if b["file"]} == files
    publishable_table(table).push_to_hub("tester/kf2", private=True)
    for path in iter_repo_files(local_hub, "tester/kf2"):
        assert str(tmp_path).encode() not in local_hub.read_file("tester/kf2", path), path


def test_a_keyframes_table_never_lands_in_a_lerobot_dataset_repo(local_hub: LocalHub, annotated_repo, tiny: Path,
                                                                 cli) -> None:
    repo, _ = annotated_repo
    before = _state(local_hub, repo)
    rc, _, err = cli("keyframes", tiny, "--push_to_hub=true", f"--new_repo_id={repo}", "--policy=uniform:2")
    assert rc == 2 and "holds a LeRobot dataset" in one_error_line(err)
    assert _state(local_hub, repo) == before


# -- issue 21: a streamed source published as a pull request, or as a new root with its videos ---------------
def test_annotate_opens_a_pull_request_on_the_source_and_moves_no_video(local_hub: LocalHub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.language import read_dataset_annotations

    src = _separate_videos(tmp_path / "src")
    push_dataset(src, "someone-else/src", private=False, token=LocalHub.OTHER_TOKEN)  # someone else's public dataset
    before = _state(local_hub, "someone-else/src")
    lfs_before = set(local_hub._lfs)
    out = tmp_path / "out"
    config = _config(repo_id="someone-else/src", out=out, push_to_hub=True, create_pr=True)
    result = run_annotation(config, VLM, vlm=ScriptedBackend(plausible_answers))
    push = result.push
    assert push.pr_revision == "refs/pr/1" and push.video_files == 0, push.summary()
    assert "pull request refs/pr/1" in result.summary() and "moves tag v3.0" in result.summary()
    assert "videos: fetched" not in result.summary()
    main, tags, prs = _state(local_hub, "someone-else/src")
    assert (main, tags) == before[:2] and list(prs) == ["1"]  # main and v3.0 unchanged: the owner merges
    refs = HfApi().list_repo_refs("someone-else/src", repo_type="dataset", include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]
    commit = local_hub.repo("someone-else/src").commits[prs["1"]]
    assert commit.parents == [tags["v3.0"]]  # made from the annotated source commit
    assert commit.added and all(p.startswith(("data/", "meta/")) or p == "README.md" for p in commit.added)
    mp4 = {local_hub.repo("someone-else/src").commits[main].files[p].content_sha256
           for p in commit.files if p.startswith("videos/")}
    assert not (set(local_hub._lfs) - lfs_before) & mp4  # not one video byte was uploaded
    # the pull request is a readable revision: the annotated dataset, videos from the source
    rows = load_episodes("someone-else/src", revision="refs/pr/1", download_videos=False)
    annotations, _ = read_dataset_annotations(Path(rows[0]["root"]))
    assert set(annotations) == {0, 1} and all(a.rows for a in annotations.values())
    # a re-run proposes the same files: the open pull request is returned, not a second one
    again = push_dataset(out, "someone-else/src", source_repo_id="someone-else/src", source_revision="v3.0", create_pr=True)
    assert again.pr_revision == "refs/pr/1" and list(local_hub.repo("someone-else/src").pull_requests) == ["1"]


def test_a_new_root_from_a_hub_source_gets_every_video_whole(local_hub: LocalHub, tmp_path: Path) -> None:
    src = _separate_videos(tmp_path / "src")
    push_dataset(src, "tester/src")
    out = tmp_path / "out"  # one episode annotated, its video read by byte range: the new root needs both whole
    result = run_annotation(_config(repo_id="tester/src", out=out, only_episodes=(0,), video_access="stream"), VLM,
                            vlm=ScriptedBackend(plausible_answers))
    videos = sorted(p.relative_to(src).as_posix() for p in (src / "videos").rglob("*.mp4"))
    assert len(videos) == 2
    for rel in videos:
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert "videos: fetched 2 file(s) whole" in result.summary()


@pytest.mark.parametrize("how", ["pull_request", "new_repo"])
def test_merge_publishes_a_sharded_run_once_by_pull_request_or_new_repo(local_hub: LocalHub, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       how: str) -> None:
    from lerobot_keyframes.annotate.executors.jobs import SHARD_ENV, MergeConfig, run_merge

    src = _separate_videos(tmp_path / "src")
    push_dataset(src, "tester/src")
    before = _state(local_hub, "tester/src")
    branches = []
    for shard in (0, 1):  # each shard job stages one episode on its own branch of the work repo
        monkeypatch.setenv(SHARD_ENV, f"{shard}/2")
        branch = f"shards/run/{shard}"
        run_annotation(_config(repo_id="tester/src", out=tmp_path / f"shard{shard}", only_episodes=(shard,),
                               new_repo_id="tester/work", push_to_hub=True, push_branch=branch,
                               push_staging_only=True), VLM, vlm=ScriptedBackend(plausible_answers))
        branches.append(branch)
    pr = how == "pull_request"
    import huggingface_hub.constants as hf_constants

    fresh = tmp_path / "merge-machine-cache"  # the merge runs elsewhere: no video of the source is cached there
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(fresh))
    monkeypatch.setenv("HF_HUB_CACHE", str(fresh))
    outcome = run_merge(MergeConfig(repo_id="tester/src", work_repo_id="tester/work", branches=tuple(branches),
                                    out=tmp_path / "merged", create_pr=pr,
                                    new_repo_id=None if pr else "tester/merged"))
    push = outcome["push"]
    assert outcome["validation"].ok
    if pr:
        assert push.pr_revision == "refs/pr/1" and push.video_files == 0 and outcome["notes"] == []
        main, tags, prs = _state(local_hub, "tester/src")
        assert (main, tags) == before[:2] and list(prs) == ["1"]
        added = local_hub.repo("tester/src").commits[prs["1"]].added
        assert added and not [p for p in added if p.startswith("videos/")]
    else:
        assert push.pr_revision is None and push.video_files == 2 and "fetched 2 file(s) whole" in outcome["notes"][0]
        assert _state(local_hub, "tester/src") == before
        pushed = set(iter_repo_files(local_hub, "tester/merged"))
        assert {p.relative_to(src).as_posix() for p in (src / "videos").rglob("*.mp4")} <= pushed
