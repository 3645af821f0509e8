"""The capture proxy under uvicorn for the end-to-end test, with the database made to fail while the
file named by FTVP_TEST_DB_DOWN exists: the drain's inserts and the token and endpoint lookups alike,
as a stopped database would (the proxy itself is the real one).

    python tests/proxy/serve.py PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftvp_site.settings")

import django

django.setup()

import uvicorn  # noqa: E402
from django.db import OperationalError  # noqa: E402

from evaluations.services import traffic  # noqa: E402

_record = traffic.traffic_record


def _flaky_record(*, records):
    if os.path.exists(os.environ["FTVP_TEST_DB_DOWN"]):
        raise OperationalError("the database is stopped (test)")
    return _record(records=records)


traffic.traffic_record = _flaky_record

from evaluations.proxy import app as proxy_app  # noqa: E402


def _flaky(read):
    def lookup(*args, **kwargs):
        if os.path.exists(os.environ["FTVP_TEST_DB_DOWN"]):
            raise OperationalError("the database is stopped (test)")
        return read(*args, **kwargs)

    return lookup


proxy_app.capture_token_by_hash = _flaky(proxy_app.capture_token_by_hash)
proxy_app.capture_endpoint_by_name = _flaky(proxy_app.capture_endpoint_by_name)

if __name__ == "__main__":
    from ftvp_site.proxy_asgi import application

    uvicorn.run(
        application,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
