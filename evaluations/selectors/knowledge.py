"""Reads of a suite's knowledge documents: a version's documents with their chunk counts and sizes."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Length

from evaluations.models import KnowledgeDoc, Suite, SuiteVersion


def knowledge_version(suite: Suite, number: int | None = None) -> SuiteVersion | None:
    """The suite's version `number`, or its latest when None; None when there is no such version."""
    versions = suite.versions.order_by("-number")
    if number is not None:
        versions = versions.filter(number=number)
    return versions.first()


def version_documents(version: SuiteVersion) -> QuerySet[KnowledgeDoc]:
    """The version's documents in order, each with `chunk_count` and `chars` (its text's length), the
    text itself left in the database."""
    return (
        KnowledgeDoc.objects.filter(version=version)
        .defer("text")
        .annotate(chunk_count=Count("chunks"), chars=Length("text"))
        .order_by("position")
    )


def knowledge_totals(version: SuiteVersion) -> dict[str, int]:
    """How many documents and chunks the version has, and their characters."""
    documents = KnowledgeDoc.objects.filter(version=version).aggregate(
        n=Count("pk"), chars=Sum(Length("text"))
    )
    return {
        "documents": documents["n"] or 0,
        "chunks": version.chunks.count(),
        "chars": documents["chars"] or 0,
    }
