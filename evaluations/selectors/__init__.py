"""Every read of the app, one module per domain (named like services/, which holds the writes).

A selector takes models or ids and returns querysets, model instances or plain data; it writes
nothing and imports nothing from services/, the entry points (views, api, management, workers) or
the Celery app. `make lint` holds that line (the import contracts in pyproject.toml).
"""
