"""Suite writes: importing a file makes a new immutable SuiteVersion with all its cases, or nothing."""

from __future__ import annotations

from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max

from evaluations import roles
from evaluations.importers import SourceFile, SuiteFormatError, read_sources
from evaluations.models import Case, Split, Strategy, StrategyKind, Suite, SuiteVersion, TaskType
from evaluations.services.audit import audit_record, audit_update, changes, snapshot, stored_snapshot
from evaluations.services.knowledge import KNOWLEDGE_NOTE, KnowledgeStored, counted, knowledge_store


def _labels(cases: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for case in cases:
        expected = case["expected"]
        for value in expected if isinstance(expected, list) else [expected]:
            if value is not None and str(value).strip():
                seen.setdefault(str(value).strip(), None)
    return sorted(seen)


@transaction.atomic
def suite_import(
    *,
    name: str,
    fileobj: BinaryIO | None = None,
    filename: str = "",
    files: list[SourceFile] | None = None,
    fmt: str | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    task_type: str | None = None,
    description: str | None = None,
    quality_target: float | None = None,
    monthly_volume: int | None = None,
    input_field: str | None = None,
    user=None,
) -> SuiteVersion:
    """Read a suite file and store it as the suite's next version (creating the suite if new).

    The files of a `knowledge/` folder in a zip become the version's knowledge documents; an upload
    without one carries the previous version's documents over, so re-uploading cases loses none.
    Raises SuiteFormatError (naming file, line and field) before anything is written.
    """
    name = name.strip()
    if not name:
        raise SuiteFormatError(filename, "the suite needs a name", field="name")
    if task_type is not None and task_type not in TaskType.values:
        raise SuiteFormatError(
            filename, f"{task_type!r} is not one of {', '.join(TaskType.values)}", field="task_type"
        )
    if files is None:
        if fileobj is None:
            raise SuiteFormatError(filename or "upload", "no file was given")
        files = [SourceFile(filename, fileobj.read())]
    result = read_sources(
        files,
        fmt=fmt or None,
        test_fraction=test_fraction,
        seed=seed,
        max_bytes=settings.FTVP_MAX_UPLOAD_BYTES,
        input_field=input_field,
    )
    cases = result.cases
    filename = ", ".join(result.files)[:255] if len(result.files) > 1 else result.files[0]
    if not any(c["split"] == Split.TEST for c in cases):
        raise SuiteFormatError(
            filename, "no case is in the test split; nothing would be evaluated", field="split"
        )

    suite, created = Suite.objects.select_for_update().get_or_create(
        name=name, defaults={"task_type": task_type or TaskType.GENERATION, "owner": user}
    )
    stored = snapshot(suite, UPLOAD_FIELDS)
    changed = []
    if not created and task_type and suite.task_type != task_type:
        suite.task_type, changed = task_type, [*changed, "task_type"]
    if description is not None:
        suite.description, changed = description, [*changed, "description"]
    if quality_target is not None:
        suite.quality_target, changed = quality_target, [*changed, "quality_target"]
    if monthly_volume is not None:
        suite.monthly_volume, changed = monthly_volume, [*changed, "monthly_volume"]
    if changed:
        suite.save(update_fields=changed)

    if suite.task_type == TaskType.CLASSIFICATION:  # the suite's type, as just set or kept
        labels = _labels(cases)
        if len(labels) < 2:
            raise SuiteFormatError(
                filename, "a classification suite needs at least two distinct labels", field="expected"
            )
    else:
        labels = []

    number = (suite.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    previous = suite.versions.filter(number__lt=number).order_by("-number").first()
    previous_documents = previous.knowledge.count() if previous is not None else 0
    knowledge_note = _knowledge_note(result.knowledge, previous, previous_documents)
    version = SuiteVersion.objects.create(
        suite=suite,
        number=number,
        source_name=filename[:255],
        source_format=result.format,
        task_type=suite.task_type,
        labels=labels,
        notes=[*result.extras.notes, *([knowledge_note] if knowledge_note else [])],
        # promptfoo's defaultTest.assert, ftvp YAML's defaults: this version's, not the suite's
        default_assertions=result.extras.default_assertions,
        created_by=user,
    )
    _import_prompts(suite, result.extras.prompts, user=user)
    # In chunks: 100,000 model instances at once would double the import's memory.
    for start in range(0, len(cases), 1000):
        Case.objects.bulk_create(
            [
                Case(
                    version=version,
                    key=c["key"],
                    position=start + i,
                    input=c["input"],
                    expected=c["expected"],
                    assertions=c["assertions"],
                    tags=c["tags"],
                    metadata=c["metadata"],
                    split=c["split"],
                )
                for i, c in enumerate(cases[start : start + 1000])
            ]
        )
    if result.knowledge is not None:  # the upload's knowledge/ folder: the version's documents
        knowledge = knowledge_store(version=version, documents=result.knowledge)
    elif previous_documents:  # none uploaded: the previous version's, as they were
        knowledge = knowledge_store(version=version, source=previous)
    else:
        knowledge = KnowledgeStored()
    if created:  # the new suite's fields as the upload set them
        suite_before, suite_after = {}, snapshot(suite, UPLOAD_FIELDS)
    else:  # those it changed, with their values before and after
        suite_before, suite_after = changes(stored, snapshot(suite, UPLOAD_FIELDS))
    audit_record(
        actor=user,
        action="suite.upload",
        obj=version,
        suite_id=suite.pk,
        before={"suite": suite_before} if suite_before else None,
        after={
            "version": number,
            "cases": len(cases),
            "test_cases": sum(1 for c in cases if c["split"] == Split.TEST),
            "source_name": version.source_name,
            "source_format": version.source_format,
            "new_suite": created,
            **({"suite": suite_after} if suite_after else {}),
            **(
                {
                    "knowledge": {
                        "documents": knowledge.documents,
                        "chunks": knowledge.chunks,
                        "from": "upload" if result.knowledge is not None else f"v{previous.number}",
                    }
                }
                if knowledge.documents
                else {}
            ),
        },
    )
    return version


def _knowledge_note(documents: list | None, previous: SuiteVersion | None, previous_documents: int) -> str:
    """What the new version's knowledge is, for its notes: the upload's knowledge/ folder, or the
    previous version's documents carried over (nothing when there are none)."""
    if documents is not None:
        chunks = sum(len(doc["chunks"]) for doc in documents)
        found = counted(len(documents), "document")
        note = f"{KNOWLEDGE_NOTE}{found} from the knowledge/ folder ({counted(chunks, 'chunk')})"
        if previous_documents:
            note += f"; they replace the {previous_documents:,} of v{previous.number}"
        return note + "."
    if previous_documents:
        return (
            f"{KNOWLEDGE_NOTE}{counted(previous_documents, 'document')} of v{previous.number} carried over "
            "(the upload has no knowledge/ folder)."
        )
    return ""


# The suite's fields an upload may set (the rest are the suite page's settings).
UPLOAD_FIELDS = ("task_type", "description", "quality_target", "monthly_volume")


def _import_prompts(suite: Suite, prompts: list[dict], *, user=None) -> list[Strategy]:
    """An imported file's prompt templates become `template` strategies named after the suite; a
    changed template becomes the strategy's next version (strategies are versioned like suites)."""
    made = []
    for prompt in prompts:
        name = f"{suite.name}: {prompt['name']}"[:100]
        params = {"template": prompt["template"]}
        latest = Strategy.objects.filter(name=name).order_by("-version").first()
        if latest is not None and latest.params == params:
            made.append(latest)
            continue
        made.append(
            Strategy.objects.create(
                name=name,
                version=(latest.version + 1) if latest else 1,
                kind=StrategyKind.TEMPLATE,
                params=params,
                description=f"Imported prompt of {suite.name}",
            )
        )
        audit_record(
            actor=user,
            action="strategy.create",
            obj=made[-1],
            suite_id=suite.pk,
            after=snapshot(made[-1], ["name", "version", "kind", "params"]),
        )
    return made


SETTINGS_FIELDS = (
    "description", "quality_target", "pass_threshold", "monthly_volume", "default_assertions",
    "approvals_required",
)  # fmt: skip


def _policy_change_check(*, suite: Suite, approvals_required: int | None, user) -> None:
    """The sign-off policy is an admin's (roles.SET_BASELINE); an editor may save the other settings."""
    if approvals_required is None or user is None or user.has_perm(roles.SET_BASELINE):
        return
    if approvals_required != Suite.objects.values_list("approvals_required", flat=True).get(pk=suite.pk):
        raise PermissionDenied(
            "only an admin can change the sign-off policy (approvals to sign off); ask one to change it"
        )


def suite_update_settings(
    *,
    suite: Suite,
    description: str,
    quality_target: float,
    pass_threshold: float,
    monthly_volume: int,
    default_assertions: list[dict] | None = None,
    approvals_required: int | None = None,
    user=None,
) -> Suite:
    """Change what the suite aims for and checks, and its sign-off policy (approvals a run needs);
    results already scored keep their scores until the run is re-scored."""
    _policy_change_check(suite=suite, approvals_required=approvals_required, user=user)
    before = stored_snapshot(suite, SETTINGS_FIELDS)
    suite.description = description
    suite.quality_target = quality_target
    suite.pass_threshold = pass_threshold
    suite.monthly_volume = monthly_volume
    fields = ["description", "quality_target", "pass_threshold", "monthly_volume"]
    if default_assertions is not None:
        suite.default_assertions = default_assertions
        fields.append("default_assertions")
    if approvals_required is not None:
        suite.approvals_required = approvals_required
        fields.append("approvals_required")
    suite.full_clean()
    with transaction.atomic():
        suite.save(update_fields=fields)
        audit_update(
            actor=user,
            action="suite.settings",
            obj=suite,
            suite_id=suite.pk,
            before=before,
            fields=SETTINGS_FIELDS,
        )
    return suite


UNCHANGED = object()  # a profile field not given: kept as it is


def suite_update_profile(
    *,
    suite: Suite,
    quality_target: float,
    monthly_volume: int,
    horizon_months: int,
    retrains_per_year: float,
    examples_available: int | None,
    training_price_per_1m,
    training_epochs: int,
    urgency: str,
    monthly_budget=None,
    user=None,
    traffic_endpoint=UNCHANGED,
    traffic_tag=UNCHANGED,
) -> Suite:
    """Change the suite's decision profile; the decision is computed from it on every read.
    `traffic_endpoint` (and `traffic_tag`): measure the volume and the production prompt's tokens on
    that endpoint's captured traffic; left as they are unless given."""
    measured: dict = {}
    if traffic_endpoint is not UNCHANGED:
        measured["traffic_endpoint"] = traffic_endpoint
    if traffic_tag is not UNCHANGED:
        measured["traffic_tag"] = (traffic_tag or "").strip()
    fields = {
        **measured,
        "quality_target": quality_target,
        "monthly_volume": monthly_volume,
        "horizon_months": horizon_months,
        "retrains_per_year": retrains_per_year,
        "examples_available": examples_available,
        "training_price_per_1m": training_price_per_1m,
        "training_epochs": training_epochs,
        "urgency": urgency,
        "monthly_budget": monthly_budget,
    }
    before = stored_snapshot(suite, list(fields))
    for name, value in fields.items():
        setattr(suite, name, value)
    suite.full_clean()
    with transaction.atomic():
        suite.save(update_fields=list(fields))
        audit_update(
            actor=user,
            action="suite.profile",
            obj=suite,
            suite_id=suite.pk,
            before=before,
            fields=list(fields),
        )
    return suite
