"""Pushes against the local Hub (a real HTTP server): the source is never overwritten by accident, private stays
private, temp files and links out of the root never go up, and annotate checks the target before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash

from lerobot_keyframes.annotate import run_annotation
from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.testing.local_hub import LocalHub, iter_repo_files
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
from lerobot_keyframes.vlm.config import VlmConfig

pytest_plugins = ("hub_fixtures",)  # local_hub

VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")


def _annotate_from_hub(repo_id: str, out: Path) -> None:
    config = AnnotateConfig(repo_id=repo_id, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                            interjections=InterjectionsConfig(interjection_min_t=0.1))
    result = run_annotation(config, VLM, vlm=ScriptedBackend(plausible_answers))
    assert result.failures == {} and result.validation.ok, result.summary()


def test_push_of_an_annotated_output_never_overwrites_its_source_unasked(local_hub: LocalHub, tiny: Path,
                                                                         tmp_path: Path, cli) -> None:
    push_dataset(tiny, "tester/src")  # a private source dataset on the Hub
    source_head = local_hub.commits("tester/src")[0].oid
    out = tmp_path / "annotated"
    _annotate_from_hub("tester/src", out)
    provenance = json.loads((out / "meta/annotation_provenance.json").read_text())
    assert provenance["source_repo_id"] == "tester/src" and provenance["source_revision"] == "v3.0"

    # --repo_id not repeated: the output itself says where it came from
    rc, _, err = cli("push", f"--root={out}", "--new_repo_id=tester/src")
    assert rc == 2 and "it is the source dataset" in one_error_line(err)
    assert local_hub.commits("tester/src")[0].oid == source_head
    # an annotated copy of a private dataset is never made public
    rc, _, err = cli("push", f"--root={out}", "--new_repo_id=tester/copy", "--private=false")
    assert rc == 2 and "refusing to make tester/copy public" in one_error_line(err)
    assert not local_hub.has_repo("tester/copy")
    assert LocalHub.TOKEN not in err
    rc, stdout, err = cli("push", f"--root={out}", "--new_repo_id=tester/copy")
    assert rc == 0, err
    assert local_hub.repo("tester/copy").private
    rc, _, err = cli("push", f"--root={out}", "--new_repo_id=tester/src", "--allow_source_overwrite=true")
    assert rc == 0, err  # asked for explicitly
    assert local_hub.commits("tester/src")[0].oid != source_head


def test_temp_files_of_atomic_writes_are_never_uploaded(local_hub: LocalHub, tiny: Path) -> None:
    (tiny / "data/chunk-000/.file-000.parquet.tmp-4242-0a1b2c3d").write_bytes(b"half-written parquet")
    (tiny / "meta/.info.json.tmp-4242-deadbeef").write_text("{half")
    push_dataset(tiny, "tester/ds")
    files = set(iter_repo_files(local_hub, "tester/ds"))
    assert "meta/info.json" in files and not any(".tmp-" in f for f in files), sorted(files)
    (tiny / "meta/.tasks.parquet.tmp-1-ffff0000").write_bytes(b"x")  # a re-push sees it too
    (tiny / "meta/stats.json").write_text("{}")
    push_dataset(tiny, "tester/ds")
    files = set(iter_repo_files(local_hub, "tester/ds"))
    assert not any(".tmp-" in f for f in files), sorted(files)


def test_push_refuses_a_link_out_of_the_root(local_hub: LocalHub, tiny: Path, tmp_path: Path, cli) -> None:
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY----- not for upload")
    (tiny / "meta" / "key").symlink_to(secret)
    before = tree_hash(tiny)
    rc, _, err = cli("push", f"--root={tiny}", "--new_repo_id=tester/leak")
    assert rc == 2 and "meta/key" in one_error_line(err) and "outside the dataset root" in err
    assert not local_hub.has_repo("tester/leak")
    assert tree_hash(tiny) == before


def test_a_local_root_with_no_known_source_is_private_unless_asked(local_hub: LocalHub, tiny: Path, cli) -> None:
    rc, _, err = cli("push", f"--root={tiny}", "--new_repo_id=tester/default")
    assert rc == 0, err
    assert local_hub.repo("tester/default").private
    rc, _, err = cli("push", f"--root={tiny}", "--new_repo_id=tester/open", "--private=false")
    assert rc == 0, err  # explicit: a local dataset with no known source is the user's own
    assert not local_hub.repo("tester/open").private


@pytest.mark.parametrize("case", ["onto_source", "public_copy_of_private", "read_only_token", "other_namespace",
                                  "no_token"])
def test_annotate_checks_the_hub_target_before_any_model_call(local_hub: LocalHub, tiny: Path, tmp_path: Path, cli,
                                                              model_server, monkeypatch, case: str) -> None:
    push_dataset(tiny, "tester/src", private=case != "no_token")  # private (public: readable without a token)
    target = {"onto_source": "tester/src", "other_namespace": "someone-else/copy"}.get(case, "tester/copy")
    flags = ["--repo_id=tester/src", f"--out={tmp_path / 'out'}", "--push_to_hub=true", f"--new_repo_id={target}"]
    if case == "public_copy_of_private":
        flags.append("--private=false")
    if case == "read_only_token":
        monkeypatch.setenv("HF_TOKEN", LocalHub.READ_TOKEN)
    head = local_hub.commits("tester/src")[0].oid
    if case == "no_token":
        monkeypatch.delenv("HF_TOKEN")
    rc, _, err = cli("annotate", *flags, *model_flags(model_server.api_base))
    assert rc == 2
    line = one_error_line(err)
    assert target in line
    assert model_server.stats.requests == 0  # refused before the first model call
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.staging").exists()
    assert local_hub.commits("tester/src")[0].oid == head and not local_hub.has_repo("tester/copy")
    assert LocalHub.TOKEN not in err and LocalHub.READ_TOKEN not in err
