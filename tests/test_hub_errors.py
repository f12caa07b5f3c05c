"""Hub failures become actionable HubError messages (401/403/404/409/5xx), and tokens never leak."""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download

from lerobot_keyframes.cli import main as cli_main
from lerobot_keyframes.hub.errors import HubError, hub_errors, redact
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.testing.local_hub import LocalHub

pytest_plugins = ("hub_fixtures",)  # the local_hub fixture

WRONG_TOKEN = "hf_ThisTokenIsWrongButLooksReal0123456789"


def _everything_said(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def test_status_codes_map_to_actionable_messages(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("tester/r", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="tester/r", repo_type="dataset")
    cases = [
        (lambda: HfApi(token=WRONG_TOKEN).list_repo_refs("tester/r", repo_type="dataset"), 401,
         ["authentication failed", "HF_TOKEN", "hf auth login"]),
        (lambda: HfApi(token=LocalHub.READ_TOKEN).create_tag("tester/r", tag="t", repo_type="dataset"), 403,
         ["permission denied", "write access"]),
        (lambda: api.list_repo_refs("tester/missing", repo_type="dataset"), 404, ["repository not found", "private"]),
        (lambda: api.repo_info("tester/r", repo_type="dataset", revision="nope"), 404, ["revision 'nope' does not exist"]),
        (lambda: hf_hub_download("tester/r", "b.txt", repo_type="dataset"), 404, ["a file does not exist"]),
        (lambda: [api.create_tag("tester/r", tag="v1", repo_type="dataset") for _ in range(2)], 409,
         ["conflict", "re-run the same command"]),
    ]
    for call, status, phrases in cases:
        with pytest.raises(HubError) as exc:
            with hub_errors("doing it", repo_id="tester/r", revision="nope" if status == 404 else None):
                call()
        assert exc.value.status == status, (status, str(exc.value))
        for phrase in phrases:
            assert phrase in str(exc.value), (phrase, str(exc.value))
        assert "doing it on dataset repo tester/r" in str(exc.value)
        assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no request objects attached
    local_hub.fail_next("refs", status=502)
    with pytest.raises(HubError, match=r"server error \(502\)\. Nothing was changed; re-run the same command") as exc:
        with hub_errors("listing refs", repo_id="tester/r"):  # a read: nothing to resume
            api.list_repo_refs("tester/r", repo_type="dataset")
    assert exc.value.status == 502 and "push" not in str(exc.value)
    local_hub.fail_next("tag", status=502, times=10)
    with pytest.raises(HubError, match=r"server error \(502\).*re-running the same command resumes") as exc:
        with hub_errors("tagging", repo_id="tester/r", write=True):
            api.create_tag("tester/r", tag="v2", repo_type="dataset")
    assert exc.value.status == 502


def test_push_errors_name_the_problem_and_never_show_a_token(
    local_hub: LocalHub, sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], no_backoff_sleep: None,
) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "ds"
    shutil.copytree(sample_root, root)
    said = []

    local_hub.create_repo("someone-else/open", private=False)
    with pytest.raises(HubError, match=r"permission denied \(403\)") as exc:  # 403: a repo of another user
        push_dataset(root, "someone-else/open")
    assert exc.value.status == 403 and "someone-else is not your user" in str(exc.value)
    said.append(_everything_said(exc.value))
    with pytest.raises(HubError, match=r"permission denied \(403\)") as exc:  # 403: a namespace that is not yours
        push_dataset(root, "someone-else/new")
    assert exc.value.status == 403
    said.append(_everything_said(exc.value))
    with pytest.raises(HubError, match=r"permission denied \(403\)") as exc:  # 403: read-only token
        push_dataset(root, "tester/ro", token=LocalHub.READ_TOKEN)
    assert exc.value.status == 403
    said.append(_everything_said(exc.value))
    local_hub.fail_next("preupload", status=500, times=10)  # 5xx, past huggingface_hub's retries
    with pytest.raises(HubError, match="server error") as exc:
        push_dataset(root, "tester/flaky")
    said.append(_everything_said(exc.value))
    local_hub.clear_faults()

    monkeypatch.setenv("HF_TOKEN", WRONG_TOKEN)  # 401 through the CLI
    assert cli_main(["-vv", "push", f"--root={root}", "--new_repo_id=tester/x"]) == 2
    out, err = capsys.readouterr()
    assert "authentication failed (401)" in err
    with pytest.raises(HubError, match=r"authentication failed \(401\)") as exc:
        push_dataset(root, "tester/x")
    assert exc.value.status == 401
    said.append(_everything_said(exc.value))

    transcript = "\n".join([*said, out, err, caplog.text])
    for token in (WRONG_TOKEN, LocalHub.TOKEN, LocalHub.READ_TOKEN):
        assert token not in transcript
    assert caplog.text  # logs were captured (at DEBUG), and still no token in them


def test_redact_removes_tokens_and_bearer_values() -> None:
    text = f"Authorization: Bearer {WRONG_TOKEN} and hf_abcdefghijklmnop and token=secret-value"
    cleaned = redact(text, token="secret-value")
    assert WRONG_TOKEN not in cleaned and "hf_abcdefghijklmnop" not in cleaned and "secret-value" not in cleaned
    assert str(HubError(f"bad {WRONG_TOKEN}")) == "bad hf_***"
