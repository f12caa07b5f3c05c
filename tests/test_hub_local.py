"""The local Hub speaks the protocol stock huggingface_hub uses, and the dataset reader loads from it by repo id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from lerobot_keyframes.dataset import DatasetFormatError, load_episodes
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.testing.local_hub import LocalHub, git_blob_oid

pytest_plugins = ("hub_fixtures",)  # the local_hub fixture


def test_commits_refs_and_downloads_have_git_semantics(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("tester/r", repo_type="dataset")
    first = api.create_commit("tester/r", repo_type="dataset", commit_message="one", operations=[
        CommitOperationAdd("a.txt", b"hello\n"), CommitOperationAdd("d/x.parquet", b"PAR1\0" + bytes(2000))])
    second = api.create_commit("tester/r", repo_type="dataset", commit_message="two", parent_commit=first.oid,
                               operations=[CommitOperationAdd("a.txt", b"bye\n"), CommitOperationDelete("d/x.parquet")])
    history = local_hub.commits("tester/r")
    assert [c.oid for c in history[:2]] == [second.oid, first.oid]
    assert history[0].parents == [first.oid] and history[0].added == ["a.txt"] and history[0].deleted == ["d/x.parquet"]
    assert [c.commit_id for c in api.list_repo_commits("tester/r", repo_type="dataset")][:2] == [second.oid, first.oid]

    api.create_tag("tester/r", tag="v3.0", revision=first.oid, repo_type="dataset")
    api.create_branch("tester/r", branch="work", revision=first.oid, repo_type="dataset")
    refs = api.list_repo_refs("tester/r", repo_type="dataset")
    assert {t.name: t.target_commit for t in refs.tags} == {"v3.0": first.oid}
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second.oid, "work": first.oid}

    # regular files: git blob id; LFS files (binary): sha256 + pointer, X-Linked-* headers on resolve
    info = {f.path: f for f in api.get_paths_info("tester/r", ["a.txt", "d/x.parquet", "d"], revision="v3.0",
                                                   repo_type="dataset")}
    assert info["a.txt"].blob_id == git_blob_oid(b"hello\n") and info["a.txt"].lfs is None
    assert info["d/x.parquet"].lfs.size == 2005 and info["d"].tree_id
    tree = {f.path for f in api.list_repo_tree("tester/r", recursive=True, revision="work", repo_type="dataset")}
    assert tree == {".gitattributes", "a.txt", "d", "d/x.parquet"}
    path = hf_hub_download("tester/r", "d/x.parquet", repo_type="dataset", revision="v3.0")
    assert Path(path).read_bytes() == b"PAR1\0" + bytes(2000)
    assert Path(hf_hub_download("tester/r", "a.txt", repo_type="dataset")).read_text() == "bye\n"

    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("tester/r", "a.txt", repo_type="dataset", revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("tester/r", "d/x.parquet", repo_type="dataset", revision="main")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_refs("tester/missing", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as conflict:  # a stale parent commit is refused
        api.create_commit("tester/r", repo_type="dataset", commit_message="late", parent_commit=first.oid,
                          operations=[CommitOperationAdd("b.txt", b"x")])
    assert conflict.value.response.status_code == 412


def test_auth_visibility_and_model_repos(local_hub: LocalHub) -> None:
    local_hub.create_repo("someone-else/secret", private=True)
    local_hub.create_repo("someone-else/open", private=False)
    me, anonymous = HfApi(), HfApi(token=False)
    assert me.whoami()["name"] == "tester"
    with pytest.raises(RepositoryNotFoundError):
        me.repo_info("someone-else/secret", repo_type="dataset")
    assert anonymous.repo_info("someone-else/open", repo_type="dataset").private is False
    with pytest.raises(HfHubHTTPError) as exc:
        me.create_commit("someone-else/open", repo_type="dataset", commit_message="x",
                         operations=[CommitOperationAdd("a.txt", b"x")])
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token="hf_definitely_not_a_valid_token").whoami()
    assert exc.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token=LocalHub.READ_TOKEN).create_repo("tester/ro", repo_type="dataset")
    assert exc.value.response.status_code == 403
    # model repos use URLs without a type prefix
    me.create_repo("tester/model", private=True)
    me.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="tester/model")
    assert Path(hf_hub_download("tester/model", "config.json")).read_text() == "{}"
    assert local_hub.repo("tester/model", "model").private


def test_fault_injection_fails_or_drops_requests(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("tester/f", repo_type="dataset")
    local_hub.fail_next("commit", status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit("tester/f", repo_type="dataset", commit_message="x", operations=[CommitOperationAdd("a", b"1")])
    assert exc.value.response.status_code == 500
    assert len(local_hub.commits("tester/f")) == 1  # only the initial commit
    api.create_commit("tester/f", repo_type="dataset", commit_message="x", operations=[CommitOperationAdd("a", b"1")])
    assert local_hub.read_file("tester/f", "a") == b"1"


def test_reader_loads_a_pushed_dataset_by_repo_id_at_the_v3_tag(local_hub: LocalHub, sample_root: Path,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(sample_root, root)
    first = push_dataset(root, "tester/sample")
    assert local_hub.repo("tester/sample").tags == {"v3.0": first.commit_oid}

    # move main without moving the tag: the reader must still read the tagged commit
    info = json.loads((root / "meta/info.json").read_text())
    info["robot_type"] = "changed_on_main"
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    second = push_dataset(root, "tester/sample", tag=False)
    assert second.commit_oid != first.commit_oid

    episodes = load_episodes("tester/sample")
    assert episodes.num_rows == 2 and set(episodes["revision"]) == {"v3.0"}
    snapshot = Path(episodes[0]["root"])
    assert snapshot.name == first.commit_oid
    assert json.loads((snapshot / "meta/info.json").read_text())["robot_type"] != "changed_on_main"
    assert not (snapshot / "videos").exists()  # meta + data only until videos are asked for

    local_rows = load_episodes(sample_root)
    assert episodes["timestamps"] == local_rows["timestamps"] and episodes["length"] == local_rows["length"]

    on_main = load_episodes("tester/sample", revision="main", download_videos=True)
    main_root = Path(on_main[0]["root"])
    assert main_root.name == second.commit_oid
    for cam in on_main[0]["cameras"]:
        assert (main_root / cam["path"]).read_bytes() == (sample_root / cam["path"]).read_bytes()


def test_a_dataset_without_the_codebase_tag_is_read_at_main(local_hub, sample_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(sample_root, root)
    pushed = push_dataset(root, "tester/untagged", tag=False)
    episodes = load_episodes("tester/untagged")
    assert set(episodes["revision"]) == {"main"} and Path(episodes[0]["root"]).name == pushed.commit_oid
    with pytest.raises(DatasetFormatError, match="tester/nothing: no such dataset on the Hub"):
        load_episodes("tester/nothing")
