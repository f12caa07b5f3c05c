"""The download endpoint: `resolve/{rev}/{path}` with the Hub's ETag, linked-size and range semantics."""

from __future__ import annotations

from .base import HandlerBase


class DownloadRoutes(HandlerBase):
    # -- downloads ------------------------------------------------------------------------------
    def _resolve(self, method: str, repo_type: str, repo_id: str, rev: str, path: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            entry = commit.files.get(path)
            if entry is None:
                self._send_json({"error": "Entry not found"}, status=404, error_code="EntryNotFound",
                                error_message="Entry not found", headers={"X-Repo-Commit": commit.oid})
                return 404
            content = self.hub._objects[entry.content_sha256]
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if entry.lfs_sha256:
            headers.update({"ETag": f'"{entry.lfs_sha256}"', "X-Linked-Etag": f'"{entry.lfs_sha256}"',
                            "X-Linked-Size": str(entry.size)})
        else:
            headers["ETag"] = f'"{entry.blob_oid}"'
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start_s, _, end_s = range_header[6:].split(",")[0].partition("-")
            size = len(content)
            if start_s:
                start, end = int(start_s), min(int(end_s) if end_s else size - 1, size - 1)
            else:
                start, end = max(size - int(end_s), 0), size - 1
            if start >= size or start > end:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"}, head=method == "HEAD")
            body = content[start : end + 1]
            if self._corrupt == "short":  # fault injection: half the body (Content-Range still claims all of it)
                body = body[: len(body) // 2]
            elif self._corrupt == "wrong_range":  # fault injection: the bytes (and Content-Range) of another range
                shift = 1 if end + 1 < size else -1
                start, end = start + shift, end + shift
                body = content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return self._send(206, body, headers, head=method == "HEAD")
        return self._send(200, content, headers, head=method == "HEAD")
