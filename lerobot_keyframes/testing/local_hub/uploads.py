"""Upload endpoints: preupload (regular or LFS per file), the LFS batch/upload/verify protocol, and commits.

Xet is not implemented: clients must upload through LFS (`HF_HUB_DISABLE_XET=1`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from .base import HandlerBase, HubHTTPError
from .storage import Commit, FileEntry, Repo, git_blob_oid, lfs_pointer


class UploadRoutes(HandlerBase):
    # -- uploads --------------------------------------------------------------------------------
    def _preupload(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True, contribute=bool(self._query.get("create_pr")))
        payload = self._json_body()
        with self.hub._lock:
            commit = repo.resolve(rev or "main")
            if commit is None and not self._query.get("create_pr"):
                raise HubHTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            files = []
            for item in payload.get("files", []):
                path, size = item["path"], int(item["size"])
                sample = base64.b64decode(item.get("sample") or "")
                lfs = self.hub._lfs_path(repo, commit, path, size, sample)
                existing = commit.files.get(path) if commit is not None else None
                oid = None
                if existing is not None:
                    oid = existing.lfs_sha256 if (lfs and existing.lfs_sha256) else existing.blob_oid
                files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._send_json({"files": files, "commitOid": commit.oid if commit else None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> int:
        repo = self._get_repo(repo_type, repo_id, contribute=True)  # the commit decides: a push or a pull request
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubHTTPError(400, "only the upload operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not isinstance(oid, str) or len(oid) != 64 or not isinstance(size, int) or size < 0:
                item["error"] = {"code": 422, "message": "invalid oid or size"}
                item["oid"], item["size"] = str(oid), int(size or 0)
            else:
                with self.hub._lock:
                    present = oid in self.hub._objects and len(self.hub._objects[oid]) == size
                if not present:
                    item["actions"] = {
                        "upload": {"href": f"{self.hub.url}/_lfs/upload/{oid}?size={size}&repo={repo.repo_id}", "header": {}},
                        "verify": {"href": f"{self.hub.url}/_lfs/verify", "header": {}},
                    }
            objects.append(item)
        return self._send_json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str) -> int:
        body = self._read_body()
        expected = int(self._query.get("size", [len(body)])[0])
        if len(body) != expected or hashlib.sha256(body).hexdigest() != oid:
            raise HubHTTPError(400, f"uploaded content does not match oid {oid} / size {expected}")
        with self.hub._lock:
            self.hub._objects[oid] = body
            self.hub._lfs.add(oid)
        return self._send(200, b"")

    def _lfs_verify(self) -> int:
        payload = self._json_body()
        with self.hub._lock:
            ok = payload.get("oid") in self.hub._objects
        if not ok:
            raise HubHTTPError(404, f"LFS object {payload.get('oid')} not found")
        return self._send_json({"success": True})

    def _commit_endpoint(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        create_pr = bool(self._query.get("create_pr"))
        repo = self._get_repo(repo_type, repo_id, write=True, contribute=create_pr)
        lines = [json.loads(line) for line in self._read_body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubHTTPError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        branch = rev or "main"
        with self.hub._lock:
            head = self._commit_head(repo, branch, header.get("parentCommit"), create_pr)
            files = dict(head.files)
            added: list[str] = []
            deleted: list[str] = []
            for line in lines[1:]:
                self._apply_operation(line.get("key"), line.get("value", {}), files, added, deleted)
            title = header.get("summary") or "Update"
            description = header.get("description", "")
            author = self._user or "anonymous"
            pr_url = None
            if create_pr:
                num = len(repo.pull_requests) + 1
                ref = f"__pr_{num}"
                repo.branches[ref] = head.oid
                commit = self.hub._commit(repo, ref, files, deleted, title, description, author, added=added)
                del repo.branches[ref]
                repo.pull_requests[str(num)] = commit.oid
                pr_url = f"{self._repo_url(repo)}/discussions/{num}"
            else:
                commit = self.hub._commit(repo, branch, files, deleted, title, description, author, added=added)
        payload = {"success": True, "commitOid": commit.oid, "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}",
                   "hookOutput": ""}
        if pr_url:
            payload["pullRequestUrl"] = pr_url
        return self._send_json(payload)

    @staticmethod
    def _commit_head(repo: Repo, branch: str, parent: str | None, create_pr: bool) -> Commit:
        """The head commit of `branch`, refusing a tag or commit id and a stale `parentCommit` (412, as the Hub).

        A pull request is made from `parentCommit` when given (any commit of the repo), else from the branch head."""
        if branch not in repo.branches:
            if repo.resolve(branch) is not None:
                raise HubHTTPError(400, f"Cannot commit to {branch}: not a branch")
            raise HubHTTPError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        if create_pr and parent:
            found = [oid for oid in repo.commits if oid.startswith(parent)]
            if len(found) != 1:
                raise HubHTTPError(404, f"Invalid parent commit: {parent}", "RevisionNotFound")
            return repo.commits[found[0]]
        head = repo.head(branch)
        if parent and not create_pr and not head.oid.startswith(parent):
            raise HubHTTPError(412, "A commit has happened since. Please refresh and try again.")
        return head

    def _apply_operation(self, key: str | None, value: dict[str, Any], files: dict[str, FileEntry],
                         added: list[str], deleted: list[str]) -> None:
        """One line of the commit payload: add a regular or LFS file, delete a file or a folder."""
        path = str(value.get("path", "")).strip("/")
        if key == "file":
            raw = value["content"]
            content = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
            files[path] = self.hub._store(content, lfs=False)
            added.append(path)
        elif key == "lfsFile":
            oid = value["oid"]
            if oid not in self.hub._objects:
                raise HubHTTPError(422, f"LFS object {oid} for {path} was never uploaded")
            size = len(self.hub._objects[oid])
            if value.get("size") is not None and int(value["size"]) != size:
                raise HubHTTPError(422, f"LFS object {oid} for {path}: size mismatch")
            files[path] = FileEntry(size, git_blob_oid(lfs_pointer(oid, size)), oid, oid)
            added.append(path)
        elif key == "deletedFile":
            if path not in files:
                raise HubHTTPError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
            deleted.append(path)
        elif key == "deletedFolder":
            gone = [p for p in files if p.startswith(path + "/")]
            if not gone:
                raise HubHTTPError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in gone:
                del files[p]
            deleted.extend(gone)
        else:
            raise HubHTTPError(400, f"unknown commit operation {key!r}")
