"""Knowledge writes: a suite's knowledge documents (what the `rag` strategies retrieve from), versioned
with the suite.

Versions are immutable, so adding documents makes the suite's next version: the latest version's cases
copied as they are (same keys, positions, splits, assertions), its documents kept (or dropped, with
`replace`), the new ones added (a new document with an existing id takes the old one's place), each
cut into chunks. All of it or nothing. The chunks are embedded later, once, by the retrieval code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from evaluations.importers import SourceFile, SuiteFormatError
from evaluations.importers.knowledge import KnowledgeDocument
from evaluations.importers.sources import read_knowledge_files
from evaluations.models import Case, KnowledgeChunk, KnowledgeDoc, Suite, SuiteVersion
from evaluations.services.audit import audit_record

BATCH = 1000
# A version's notes about its cases and knowledge start so; they are not carried to the next version.
KNOWLEDGE_NOTE = "Knowledge: "
CASES_NOTE = "Cases: "
CASE_FIELDS = ("key", "position", "input", "expected", "assertions", "tags", "metadata", "split")
NAMED = 5  # document ids named in a note
AUDITED = 50  # document ids listed in an audit event


@dataclass
class KnowledgeStored:
    """What `knowledge_store` wrote into a version."""

    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0


def knowledge_import(
    *, suite: Suite, files: list[SourceFile], replace: bool = False, user=None
) -> SuiteVersion:
    """Add knowledge documents to the suite: its next version, with the latest version's cases and
    documents and the new ones (`replace=True`: the new ones only). Raises SuiteFormatError (naming
    file, line and field) before anything is written."""
    documents = read_knowledge_files(files, max_bytes=settings.FTVP_MAX_UPLOAD_BYTES)
    names = ", ".join(f.name for f in files)
    with transaction.atomic():
        suite = Suite.objects.select_for_update().get(pk=suite.pk)
        latest = suite.versions.order_by("-number").first()
        if latest is None:
            raise SuiteFormatError(
                names[:200] or "upload",
                f"the suite {suite.name!r} has no version yet; upload its cases first (Suites → Upload or "
                "import_suite), then its knowledge",
            )
        cases = latest.cases.count()
        previous = latest.knowledge.count()
        version = SuiteVersion.objects.create(
            suite=suite,
            number=latest.number + 1,
            source_name=latest.source_name,
            source_format=latest.source_format,
            task_type=latest.task_type,
            labels=latest.labels,
            default_assertions=latest.default_assertions,
            notes=carried_notes(latest),
            created_by=user,
        )
        cases_copy(source=latest, target=version)
        stored = knowledge_store(version=version, documents=documents, source=latest, replace=replace)
        version.notes = [
            *version.notes,
            f"{CASES_NOTE}the {cases:,} cases of v{latest.number}, unchanged.",
            _import_note(stored, latest=latest, previous=previous, replace=replace),
        ]
        version.save(update_fields=["notes"])
        audit_record(
            actor=user,
            action="suite.knowledge",
            obj=version,
            suite_id=suite.pk,
            after={
                "version": version.number,
                "from_version": latest.number,
                "replace": replace,
                "files": names[:255],
                "cases": cases,
                "documents": stored.documents,
                "chunks": stored.chunks,
                "added": stored.added[:AUDITED],
                "replaced": stored.replaced[:AUDITED],
                "kept": stored.kept,
                "dropped": stored.dropped,
            },
        )
    return version


def carried_notes(version: SuiteVersion) -> list[str]:
    """The version's notes about its import (e.g. assertions kept but skipped), without those about
    its cases' and knowledge's origin, for a version made from it."""
    return [n for n in version.notes if not str(n).startswith((KNOWLEDGE_NOTE, CASES_NOTE))]


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:NAMED])
    return f"{shown} and {len(ids) - NAMED:,} more" if len(ids) > NAMED else shown


def counted(n: int, noun: str) -> str:
    """1 document, 12 documents."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _import_note(stored: KnowledgeStored, *, latest: SuiteVersion, previous: int, replace: bool) -> str:
    total = f"{counted(stored.documents, 'document')}, {counted(stored.chunks, 'chunk')}"
    if replace:
        return (
            f"{KNOWLEDGE_NOTE}v{latest.number}'s {counted(previous, 'document')} replaced by "
            f"{len(stored.added):,} uploaded ({_ids(stored.added)}); {total}."
        )
    parts = []
    if stored.added:
        parts.append(f"{len(stored.added):,} added ({_ids(stored.added)})")
    if stored.replaced:
        parts.append(f"{len(stored.replaced):,} replaced ({_ids(stored.replaced)})")
    parts.append(f"{stored.kept:,} kept from v{latest.number}")
    return f"{KNOWLEDGE_NOTE}{', '.join(parts)}; {total}."


# --- copying and storing ----------------------------------------------------------------------------


def cases_copy(*, source: SuiteVersion, target: SuiteVersion) -> int:
    """Every case of `source` into `target`, every field as it is, in batches."""
    copied, last = 0, -1
    while True:
        rows = list(
            source.cases.filter(position__gt=last).order_by("position").values_list(*CASE_FIELDS)[:BATCH]
        )
        if not rows:
            return copied
        Case.objects.bulk_create(
            [Case(version=target, **dict(zip(CASE_FIELDS, r, strict=True))) for r in rows]
        )
        copied += len(rows)
        last = rows[-1][CASE_FIELDS.index("position")]


def knowledge_store(
    *,
    version: SuiteVersion,
    documents: list[KnowledgeDocument] | tuple = (),
    source: SuiteVersion | None = None,
    replace: bool = False,
) -> KnowledgeStored:
    """Write `version`'s knowledge: `source`'s documents with their chunks (unless `replace`), a new
    document with the id of one of them in its place, the other new ones after them."""
    incoming = {doc["doc_id"]: doc for doc in documents}
    stored = KnowledgeStored()
    # The plan, in order: ("copy", the source document's pk) or ("new", a document).
    plan: list[tuple[str, object]] = []
    if source is not None:
        for pk, doc_id in source.knowledge.order_by("position").values_list("pk", "doc_id"):
            if replace:
                stored.dropped += 1
            elif doc_id in incoming:
                plan.append(("new", incoming.pop(doc_id)))
                stored.replaced.append(doc_id)
            else:
                plan.append(("copy", pk))
                stored.kept += 1
    stored.added = list(incoming)
    plan += [("new", doc) for doc in incoming.values()]
    for start in range(0, len(plan), BATCH):
        _store_batch(version, plan[start : start + BATCH], start, stored)
    stored.documents = len(plan)
    return stored


def _store_batch(version: SuiteVersion, plan: list[tuple[str, object]], start: int, stored: KnowledgeStored):
    copied = {
        row["pk"]: row
        for row in KnowledgeDoc.objects.filter(pk__in=[ref for kind, ref in plan if kind == "copy"]).values(
            "pk", "doc_id", "title", "source_name", "text"
        )
    }
    docs, chunks_of, source_of = [], {}, {}  # doc_id -> new chunks; doc_id -> copied document's pk
    for offset, (kind, ref) in enumerate(plan):
        if kind == "copy":
            row = copied[ref]
            source_of[row["doc_id"]] = ref
        else:
            row = ref
            chunks_of[row["doc_id"]] = row["chunks"]
        docs.append(
            KnowledgeDoc(
                version=version,
                doc_id=row["doc_id"],
                title=row["title"],
                source_name=row["source_name"],
                text=row["text"],
                position=start + offset,
            )
        )
    KnowledgeDoc.objects.bulk_create(docs)
    new_pk = dict(version.knowledge.filter(doc_id__in=[d.doc_id for d in docs]).values_list("doc_id", "pk"))
    pending: list[KnowledgeChunk] = []

    def add(doc_pk: int, position: int, text: str) -> None:
        pending.append(KnowledgeChunk(version=version, doc_id=doc_pk, position=position, text=text))
        if len(pending) >= BATCH:
            KnowledgeChunk.objects.bulk_create(pending)
            stored.chunks += len(pending)
            pending.clear()

    for doc_id, texts in chunks_of.items():
        for position, text in enumerate(texts):
            add(new_pk[doc_id], position, text)
    target_of = {old: new_pk[doc_id] for doc_id, old in source_of.items()}
    last = 0
    while target_of:
        rows = list(
            KnowledgeChunk.objects.filter(doc_id__in=list(target_of), pk__gt=last)
            .order_by("pk")
            .values_list("pk", "doc_id", "position", "text")[:BATCH]
        )
        if not rows:
            break
        for _, doc_pk, position, text in rows:
            add(target_of[doc_pk], position, text)
        last = rows[-1][0]
    if pending:
        KnowledgeChunk.objects.bulk_create(pending)
        stored.chunks += len(pending)
