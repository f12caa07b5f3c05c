"""Hugging Face Jobs endpoints: submit, inspect, stream logs, cancel (jobs never run; tests set their stage)."""

from __future__ import annotations

import hashlib
import json
import time

from .base import HandlerBase, HubHTTPError
from .storage import now


class JobRoutes(HandlerBase):
    # -- jobs -----------------------------------------------------------------------------------
    def _jobs(self, method: str, parts: list[str]) -> int:
        user = self._require_user()
        namespace = parts[0]
        if namespace not in self._namespaces(user):
            raise HubHTTPError(403, f"You cannot run jobs under the namespace {namespace!r}")
        if method == "POST" and len(parts) == 1:
            spec = self._json_body()
            job_id = hashlib.sha1(f"{time.time_ns()}-{next(self.hub._counter)}".encode()).hexdigest()[:24]
            job = {**spec, "id": job_id, "createdAt": now(), "owner": {"id": user, "name": namespace, "type": "user"},
                   "status": {"stage": self.hub.job_stage, "message": None},
                   "secrets": dict.fromkeys(spec.get("secrets") or {}, "***")}
            with self.hub._lock:
                self.hub.jobs[job_id] = {"spec": spec, "info": job, "logs": list(self.hub.job_logs)}
            return self._send_json(job)
        if len(parts) >= 2:
            with self.hub._lock:
                job = self.hub.jobs.get(parts[1])
            if job is None:
                raise HubHTTPError(404, f"Job {parts[1]} not found")
            if method == "GET" and len(parts) == 2:
                return self._send_json(job["info"])
            if method == "GET" and parts[2:] == ["logs"]:
                lines = ["===== Job started =====", *job["logs"]]
                body = "".join(f"data: {json.dumps({'data': line, 'timestamp': now()})}\n\n" for line in lines)
                return self._send(200, body.encode(), {"Content-Type": "text/event-stream"})
            if method == "POST" and parts[2:] == ["cancel"]:
                job["info"]["status"] = {"stage": "CANCELED", "message": None}
                return self._send_json({})
        raise HubHTTPError(404, f"local hub: no jobs route for {method} {'/'.join(parts)}")
