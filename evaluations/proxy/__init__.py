"""The capture proxy: an ASGI entry point (served by uvicorn, apart from the WSGI pages) that forwards
OpenAI-compatible calls to registered endpoints and records them through a durable spool
(docs/capture.md). `ftvp_site/proxy_asgi.py` sets Django up and serves `app.application`."""
