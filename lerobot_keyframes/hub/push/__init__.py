"""Push a LeRobot v3 dataset root to the Hub: first push uploads the folder, later pushes upload only what changed.

`push_dataset(root, repo_id, ...)` is what `lerobot-keyframes push` and `annotate --push_to_hub` call:

- the target defaults to a new repo; pushing back to the source repo needs `allow_source_overwrite=True`;
- a new repo is private unless the caller passes `private=False` *and* the source is known to be public
  (an annotated copy of a private dataset is never published by accident). The source is `source_repo_id`,
  else the cache snapshot the root is, else `source_repo_id` in the root's meta/annotation_provenance.json;
  a root with no known source is the user's own and `private=False` publishes it. An existing repo's
  visibility is never changed;
- first push (nothing under data/, meta/, videos/ yet): one commit of every file of the root (`local_files`:
  staging, caches and temp files skipped, links out of the root refused);
- re-push: local files are compared with the remote listing (size, then the LFS sha256 or the git blob id)
  and only changed or new files, plus deletions of stale files under data/, meta/ and videos/, go out in
  ONE `create_commit` whose parent is the commit that was compared (a concurrent change fails cleanly);
- an interrupted push is completed by re-running it: LFS objects already uploaded are not sent again,
  and a push whose commit landed but whose tag did not only fixes the tag;
- the `v3.0` tag (codebase_version of meta/info.json) is recreated on the new commit of `main`, so
  `LeRobotDataset` and our reader resolve the annotated version;
- README.md is the dataset card (see card.py), merged with the existing card, written into the root first
  so the root and the repo stay identical.

- before anything is created or sent, the guard (`guard.py`, also run by `keyframes --push_to_hub`) refuses a root
  with an interrupted in-place write, a push that would cost an episode of the target its language rows or the
  target its language columns (unless `allow_row_loss`), and, when no Hub source is recorded, a target that may be
  the root's source (a dataset this package did not publish from the same source);
- the root's provenance is made public first (no path of this machine), in the root and in the repo alike;
- `create_pr=True` opens a pull request with only the changed data and meta files (and the card) instead, made from
  the annotated source commit: no video is sent, no tag moves (`pull_request.py`).

Modules: `target` (the source, its visibility, the target's rules), `files` (what is uploaded and whether it
changed), `remote` (the Hub calls), `guard` (the checks every writer runs), `dataset` (the steps and their
records), `pull_request`, `entry` (`push_dataset`: the steps in order), `config` (the CLI's `PushConfig`).
"""

from __future__ import annotations

from ...language.provenance import PROVENANCE_PATH
from .config import PushConfig, run_push
from .dataset import CommitPlan, PushOptions, PushResult, PushTarget
from .entry import push_dataset, push_with_options
from .files import (
    MANAGED_PREFIXES,
    SKIP_PATTERNS,
    file_matches_remote,
    git_blob_oid_file,
    is_skipped,
    iter_skipped,
    local_files,
    referenced_files,
    sha256_file,
)
from .target import (
    Visibility,
    cache_snapshot,
    check_push_target,
    source_from_provenance,
    source_visibility,
)

__all__ = [
    "MANAGED_PREFIXES", "PROVENANCE_PATH", "SKIP_PATTERNS", "CommitPlan", "PushConfig", "PushOptions", "PushResult",
    "PushTarget", "Visibility", "cache_snapshot", "check_push_target", "file_matches_remote", "git_blob_oid_file",
    "is_skipped", "iter_skipped", "local_files", "push_dataset", "push_with_options", "referenced_files", "run_push",
    "sha256_file", "source_from_provenance", "source_visibility",
]
