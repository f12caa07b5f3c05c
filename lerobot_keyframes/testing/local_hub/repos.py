"""Account and repository endpoints: whoami, YAML check, create/delete/settings, info, refs, tree, paths-info,
commit history, branches and tags."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

from .base import HandlerBase, HubHTTPError
from .storage import URL_PREFIX, Commit, Repo


class RepoRoutes(HandlerBase):
    # -- account --------------------------------------------------------------------------------
    def _whoami(self) -> int:
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org, members in self.hub.orgs.items() if user in members]
        return self._send_json({
            "type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user, "fullname": user,
            "email": f"{user}@localhost", "emailVerified": True, "isPro": True, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": self._role}},
        })

    def _validate_yaml(self) -> int:
        payload = self._json_body()
        content = payload.get("content")
        if not isinstance(content, str):
            raise HubHTTPError(400, "'content' must be a string")
        if content.startswith("---"):
            lines = content.splitlines()
            if not any(line.strip() == "---" for line in lines[1:]):
                raise HubHTTPError(400, "Invalid metadata in README.md: the YAML block is not closed with '---'")
        return self._send_json({"errors": [], "warnings": []})

    # -- repos ----------------------------------------------------------------------------------
    def _create_repo(self) -> int:
        user = self._require_user()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or user
        name = payload.get("name")
        if repo_type not in URL_PREFIX or not name:
            raise HubHTTPError(400, "invalid repo type or name")
        if namespace not in self._namespaces(user) or self._role != "write":
            raise HubHTTPError(403, f"You don't have the rights to create a {repo_type} under the namespace \"{namespace}\"")
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub._repos:
                url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
                self._send_json({"error": f"You already created this {repo_type} repo", "url": url}, status=409,
                                error_message=f"You already created this {repo_type} repo")
                return 409
            repo = self.hub.create_repo(repo_id, repo_type=repo_type, private=private, owner=namespace)
        return self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> int:
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self._require_user()}/{payload.get('name')}"
        self._get_repo(repo_type, repo_id, write=True)
        with self.hub._lock:
            del self.hub._repos[(repo_type, repo_id)]
        return self._send_json({})

    def _settings(self, method: str, repo_type: str, repo_id: str, _rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        with self.hub._lock:
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "visibility" in payload:
                repo.private = payload["visibility"] != "public"
        return self._send_json({"private": repo.private})

    def _repo_info(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            blobs = self._query.get("blobs", ["false"])[0].lower() in ("1", "true")
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sib: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sib.update(size=entry.size, blobId=entry.blob_oid)
                    if entry.lfs_sha256:
                        sib["lfs"] = {"sha256": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
                siblings.append(sib)
            return self._send_json({
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo.owner,
                "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private,
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "usedStorage": sum(e.size for e in commit.files.values()),
            })

    def _refs(self, repo_type: str, repo_id: str, _rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            def refs(table: dict[str, str], kind: str) -> list[dict[str, str]]:
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(table.items())]

            payload = {"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"), "converts": []}
            if self._query.get("include_prs"):
                payload["pullRequests"] = refs(repo.pull_requests, "pr")
        return self._send_json(payload)

    def _tree(self, repo_type: str, repo_id: str, rev: str | None, path: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self._query.get("expand", ["false"])[0].lower() in ("1", "true")
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            if path and not any(p.startswith(path + "/") for p in commit.files):
                raise HubHTTPError(404, f"{path} does not exist on {rev}", "EntryNotFound")
            prefix = path + "/" if path else ""
            names: set[str] = set()
            for p in commit.files:
                if not p.startswith(prefix):
                    continue
                parts = p[len(prefix):].split("/")
                if recursive:
                    names.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                else:
                    names.add(prefix + parts[0])
            entries = [self._entry(repo, commit, n, expand) for n in sorted(names)]
        return self._send_json(entries)

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        out = self.hub._entry_json(repo, commit, path, expand=expand)
        assert out is not None
        return out

    def _paths_info(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        ctype = self.headers.get("Content-Type", "")
        raw = self._read_body()
        if "json" in ctype:
            payload = json.loads(raw or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(raw.decode())
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            out = []
            for p in paths:
                entry = self.hub._entry_json(repo, commit, p.strip("/"), expand=expand)
                if entry is not None:
                    out.append(entry)
        return self._send_json(out)

    def _commits(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            self._resolve_rev(repo, rev)
            history = repo.history(rev or "main")
        return self._send_json([
            {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
            for c in history
        ])

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if not branch:
            raise HubHTTPError(400, "branch name missing")
        with self.hub._lock:
            if method == "DELETE":
                if branch == "main":
                    raise HubHTTPError(403, "Cannot delete the default branch")
                if branch not in repo.branches:
                    raise HubHTTPError(404, f"Branch {branch} not found", "RevisionNotFound")
                del repo.branches[branch]
                return self._send_json({})
            payload = self._json_body()
            if branch in repo.branches:
                raise HubHTTPError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._resolve_rev(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        return self._send_json({})

    def _tag(self, method: str, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        with self.hub._lock:
            if method == "DELETE":
                if rev not in repo.tags:
                    raise HubHTTPError(404, f"Tag {rev} not found", "RevisionNotFound")
                del repo.tags[rev]
                return self._send_json({})
            payload = self._json_body()
            tag = payload.get("tag")
            if not tag:
                raise HubHTTPError(400, "'tag' is required")
            commit = self._resolve_rev(repo, rev)
            if tag in repo.tags:
                raise HubHTTPError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
        return self._send_json({})
