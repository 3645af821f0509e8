"""A loopback OpenAI-compatible fine-tuning API for tests: FakeOpenAI's chat completions plus
`POST /v1/files`, `POST /v1/fine_tuning/jobs`, `GET /v1/fine_tuning/jobs[/{id}[/events|/checkpoints]]`
and `POST /v1/fine_tuning/jobs/{id}/cancel`, in the shapes of the openai SDK's types.

A job moves on each `GET /v1/fine_tuning/jobs/{id}` (a poll): validating_files, then `queued` for
`queue_polls` polls (a slow queue), `running` for `run_polls` polls (a metrics event and a checkpoint
each), then the scripted `outcome`: "succeeded" (fine_tuned_model `ft:<model>:<suffix>:<n>`,
trained_tokens), "failed" (with `error_message`) or "cancelled" (by the provider).

    server = FakeFineTune(run_polls=2)
    server.fail_api_next(429, 2, headers={"retry-after": "0"})   # the next fine-tuning calls
    server.drop_create_answer = True      # create the job, then hang up without answering
    server.creates, server.files, server.jobs, server.cancels, server.api_requests
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakeopenai import FakeOpenAI, _Failure, _Handler

PREFIX = "/v1"


class _FineTuneHandler(_Handler):
    server: Any

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/"), parse_qs(parts.query)

    def _api(self, method: str) -> bool:
        """Serve a fine-tuning or files route; False when the path is not one (chat completions)."""
        fake: FakeFineTune = self.server.fake
        path, query = self._route()
        if not (path.startswith(f"{PREFIX}/files") or path.startswith(f"{PREFIX}/fine_tuning")):
            return False
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake._lock:
            fake.api_requests.append((method, path, headers))
        failure = fake._pop_api_failure()
        if failure is not None:
            self._send_json(failure.status, failure.body or {"error": {"message": f"fake {failure.status}"}},
                            failure.headers)  # fmt: skip
            return True
        if fake.api_key is not None and headers.get("authorization") != f"Bearer {fake.api_key}":
            self._error(401, "invalid api key", "authentication_error")
            return True
        segments = path[len(PREFIX) :].strip("/").split("/")
        if method == "POST" and segments == ["files"]:
            self._upload(fake, raw)
        elif method == "POST" and segments == ["fine_tuning", "jobs"]:
            self._create(fake, raw)
        elif method == "GET" and segments == ["fine_tuning", "jobs"]:
            limit = int(query.get("limit", ["20"])[0])
            with fake._lock:
                jobs = sorted(fake.jobs.values(), key=lambda j: j["created_at"], reverse=True)[:limit]
                self._send_json(200, {"object": "list", "data": [dict(j) for j in jobs], "has_more": False})
        elif len(segments) >= 3 and segments[:2] == ["fine_tuning", "jobs"]:
            job = fake.jobs.get(segments[2])
            if job is None:
                self._error(404, f"no fine-tuning job {segments[2]}")
            elif method == "GET" and len(segments) == 3:
                self._send_json(200, fake._advance(job))
            elif method == "GET" and segments[3:] == ["events"]:
                with fake._lock:
                    events = list(reversed(fake.events[job["id"]]))  # newest first, as OpenAI lists them
                after = query.get("after", [None])[0]
                if after is not None:
                    ids = [e["id"] for e in events]
                    events = events[ids.index(after) + 1 :] if after in ids else []
                limit = min(int(query.get("limit", ["20"])[0]), fake.events_page_size)
                self._send_json(
                    200, {"object": "list", "data": events[:limit], "has_more": len(events) > limit}
                )
            elif method == "GET" and segments[3:] == ["checkpoints"]:
                if not fake.checkpoints_route:
                    self._error(404, "no route for checkpoints")
                    return True
                with fake._lock:
                    rows = list(reversed(fake.checkpoints[job["id"]]))
                self._send_json(200, {"object": "list", "data": rows, "has_more": False})
            elif method == "POST" and segments[3:] == ["cancel"]:
                self._send_json(*fake._cancel(job))
            else:
                self._error(404, f"no route for {method} {path}")
        else:
            self._error(404, f"no route for {method} {path}")
        return True

    def _upload(self, fake: FakeFineTune, raw: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        if "file" not in fields or "purpose" not in fields:
            self._error(400, "file and purpose are required")
            return
        filename, content = fields["file"]
        purpose = fields["purpose"][1].decode()
        with fake._lock:
            file_id = f"file-{len(fake.files) + 1}"
            fake.files[file_id] = {"filename": filename, "purpose": purpose, "content": content}
        self._send_json(
            200,
            {
                "id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed",
            },
        )  # fmt: skip

    def _create(self, fake: FakeFineTune, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "not JSON")
            return
        if body.get("training_file") not in fake.files:
            self._error(400, f"invalid training_file: {body.get('training_file')}")
            return
        job = fake._new_job(body)
        if fake.drop_create_answer:
            fake.drop_create_answer = False
            self.close_connection = True  # created, and the answer is lost
            return
        self._send_json(200, dict(job))

    def do_GET(self) -> None:
        if not self._api("GET"):
            super().do_GET()

    def do_POST(self) -> None:
        path, _ = self._route()
        if path.startswith((f"{PREFIX}/files", f"{PREFIX}/fine_tuning")):
            self._api("POST")
        else:
            super().do_POST()


class FakeFineTune(FakeOpenAI):
    handler_class = _FineTuneHandler

    def __init__(
        self,
        *,
        outcome: str = "succeeded",
        queue_polls: int = 1,
        run_polls: int = 2,
        trained_tokens: int = 12_000,
        error_message: str = "the training file has invalid examples",
        cost: float | None = None,
        checkpoints_route: bool = True,
        **kwargs: Any,
    ) -> None:
        self.outcome = outcome
        self.queue_polls = queue_polls
        self.run_polls = run_polls
        self.trained_tokens = trained_tokens
        self.error_message = error_message
        self.cost = cost  # a provider that reports its own figure
        self.checkpoints_route = checkpoints_route
        self.drop_create_answer = False
        self.events_page_size = 100  # smaller: the events come in pages (`after`, `has_more`)
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.creates: list[dict] = []
        self.cancels: list[str] = []
        self.polls: dict[str, int] = {}
        self.events: dict[str, list[dict]] = {}
        self.checkpoints: dict[str, list[dict]] = {}
        self.api_requests: list[tuple[str, str, dict[str, str]]] = []
        self._api_failures: deque[_Failure] = deque()
        super().__init__(**kwargs)
        self._lock = threading.RLock()

    def fail_api_next(
        self, status: int, count: int = 1, headers: dict | None = None, body: Any = None
    ) -> None:
        with self._lock:
            for _ in range(count):
                self._api_failures.append(_Failure(status, dict(headers or {}), body))

    def _pop_api_failure(self) -> _Failure | None:
        with self._lock:
            return self._api_failures.popleft() if self._api_failures else None

    def file_lines(self, file_id: str) -> list[dict]:
        return [json.loads(line) for line in self.files[file_id]["content"].decode().splitlines() if line]

    # -- the jobs' lives --------------------------------------------------------------------------------

    def _event(self, job_id: str, message: str, *, kind: str = "message", data: dict | None = None) -> None:
        events = self.events[job_id]
        events.append(
            {
                "id": f"ftevent-{job_id}-{len(events) + 1}", "object": "fine_tuning.job.event",
                "created_at": int(time.time()) + len(events), "level": "info", "message": message,
                "type": kind, "data": data or {},
            }
        )  # fmt: skip

    def _new_job(self, body: dict) -> dict:
        with self._lock:
            job_id = f"ftjob-{len(self.jobs) + 1}"
            self.creates.append(body)
            hp = body.get("hyperparameters") or {}
            job = {
                "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()) + len(self.jobs),
                "model": body["model"], "status": "validating_files", "fine_tuned_model": None,
                "finished_at": None, "error": None, "organization_id": "org-fake", "result_files": [],
                "seed": body.get("seed", 42), "trained_tokens": None,
                "training_file": body["training_file"], "validation_file": body.get("validation_file"),
                "suffix": body.get("suffix"),
                "hyperparameters": {
                    "n_epochs": hp.get("n_epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
                    "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto"),
                },
            }  # fmt: skip
            self.jobs[job_id] = job
            self.polls[job_id] = 0
            self.events[job_id] = []
            self.checkpoints[job_id] = []
            self._event(job_id, f"Validating training file: {body['training_file']}")
            return job

    def _advance(self, job: dict) -> dict:
        with self._lock:
            job_id = job["id"]
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return dict(job)
            self.polls[job_id] += 1
            n = self.polls[job_id]
            total = self.run_polls
            if n <= self.queue_polls:
                if job["status"] != "queued":
                    job["status"] = "queued"
                    self._event(job_id, "Files validated, moving job to queued state")
            elif n <= self.queue_polls + self.run_polls:
                step = n - self.queue_polls
                if job["status"] != "running":
                    job["status"] = "running"
                    self._event(job_id, "Fine-tuning job started")
                loss = round(2.0 / step, 4)
                metrics = {
                    "step": step, "total_steps": total, "train_loss": loss, "valid_loss": loss + 0.1,
                    "train_mean_token_accuracy": round(1 - loss / 4, 4),
                    "valid_mean_token_accuracy": round(1 - loss / 3, 4),
                }  # fmt: skip
                self._event(
                    job_id, f"Step {step}/{total}: training loss={loss}", kind="metrics", data=metrics
                )
                self.checkpoints[job_id].append(
                    {
                        "id": f"ftckpt-{job_id}-{step}", "object": "fine_tuning.job.checkpoint",
                        "created_at": int(time.time()), "fine_tuning_job_id": job_id, "step_number": step,
                        "fine_tuned_model_checkpoint": f"ft:{job['model']}:ckpt-step-{step}",
                        "metrics": {
                            "step": float(step), "train_loss": loss, "valid_loss": loss + 0.1,
                            "train_mean_token_accuracy": metrics["train_mean_token_accuracy"],
                            "valid_mean_token_accuracy": metrics["valid_mean_token_accuracy"],
                            "full_valid_loss": loss + 0.05,
                        },
                    }
                )  # fmt: skip
            else:
                self._finish(job, self.outcome)
            return dict(job)

    def _finish(self, job: dict, outcome: str) -> None:
        job_id = job["id"]
        job["status"] = outcome
        job["finished_at"] = int(time.time())
        if outcome == "succeeded":
            suffix = job.get("suffix") or "ftvp"
            job["fine_tuned_model"] = f"ft:{job['model']}:{suffix}:{job_id}"
            job["trained_tokens"] = self.trained_tokens
            if self.cost is not None:
                job["cost"] = self.cost
            self._event(job_id, "The job has successfully completed")
        elif outcome == "failed":
            job["error"] = {"code": "invalid_training_file", "message": self.error_message, "param": None}
            self._event(job_id, f"Fine-tuning job failed: {self.error_message}")
        else:
            self._event(job_id, "Fine-tuning job cancelled")

    def _cancel(self, job: dict) -> tuple[int, dict]:
        with self._lock:
            self.cancels.append(job["id"])
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return 400, {"error": {"message": f"job is already {job['status']}", "code": "invalid"}}
            self._finish(job, "cancelled")
            return 200, dict(job)
