"""Debian's nginx in front of a loopback model server, as teams deploy vLLM or a gateway: runs on a
real worker answer every case once through it, with nginx compressing answers (gzip, chunked),
closing kept-alive connections after a few requests and after a second idle.

`make test` installs nginx from Debian when it is missing (as root; else it says how), as it does
for chromium; FTVP_NGINX points at another binary. The test fails, never skips, without it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from evaluations.models import Result, Run, RunStatus
from evaluations.services.runs import run_create
from tests.conftest import wait_for
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.httpservers import RawChatServer

pytestmark = pytest.mark.integration

CASES = 40

CONFIG = """
master_process off;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    log_format conformance '$status $request_method $uri $sent_http_content_encoding $connection_requests';
    access_log {root}/access.log conformance;
    keepalive_timeout 1s;     # shorter than the client's 4 s: nginx drops idle connections first
    keepalive_requests 3;     # and ends each connection after three requests
    gzip on;
    gzip_types application/json;
    gzip_min_length 0;
    gzip_proxied any;
    upstream model {{
        server 127.0.0.1:{upstream};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = os.environ.get("FTVP_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        pytest.fail(
            "nginx is not installed: run `make test` (it installs Debian's nginx-light as root), or "
            "`apt-get install nginx-light`, or set FTVP_NGINX to an nginx binary"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx(tmp_path: Path):
    upstream = RawChatServer()
    port = free_port()
    root = tmp_path / "nginx"
    root.mkdir()
    (root / "nginx.conf").write_text(CONFIG.format(root=root, upstream=upstream.port, port=port))
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(root), "-c", str(root / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _listening(port) or proc.poll() is not None, 20, 0.1, message="nginx to listen")
        if proc.poll() is not None:
            pytest.fail(f"nginx did not start: {(root / 'error.log').read_text()}")
        yield upstream, f"http://127.0.0.1:{port}/v1", root
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        upstream.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def test_runs_through_nginx_answer_every_case_once(worker, nginx) -> None:
    upstream, base_url, root = nginx
    version = SuiteVersionFactory()
    for i in range(CASES):
        CaseFactory(version=version, key=f"c{i:02d}", position=i, input=f"q{i}", expected=f"answer to q{i}")
    endpoint = EndpointFactory(name="behind-nginx", base_url=base_url, max_concurrency=4, timeout_seconds=10)
    worker.start()

    for attempt in (1, 2):
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
        wait_for(lambda run=run: Run.objects.get(pk=run.pk).is_finished, 120, 0.5, message="the run")
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_text())
        results = Result.objects.filter(arm__run=run).select_related("case")
        assert sorted((r.case.key, r.error, r.output) for r in results) == [
            (f"c{i:02d}", "", f"answer to q{i}") for i in range(CASES)
        ]
        assert len(upstream.requests) == attempt * CASES  # not one request more
        time.sleep(1.5)  # past nginx's keepalive_timeout: the next run finds its connections closed

    lines = (root / "access.log").read_text().splitlines()
    posts = [line.split() for line in lines if " POST " in line]
    assert len(posts) == 2 * CASES and {p[0] for p in posts} == {"200"}
    assert {p[3] for p in posts} == {"gzip"}  # nginx compressed every answer (chunked: no length)
    assert max(int(p[4]) for p in posts) == 3  # connections were reused, up to nginx's limit
