"""Reads of suites: the list with version counts, a version's cases, and what changed between two
versions."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from evaluations.models import Suite, SuiteVersion


def suites_with_counts() -> QuerySet[Suite]:
    return Suite.objects.annotate(version_count=Count("versions", distinct=True)).order_by("name")


def version_cases(version: SuiteVersion, *, split: str = "", query: str = ""):
    qs = version.cases.all()
    if split:
        qs = qs.filter(split=split)
    if query:
        qs = qs.filter(Q(key__icontains=query) | Q(input__icontains=query))
    return qs.order_by("position")


DIFF_FIELDS = ("input", "expected", "assertions", "tags", "split")
DIFF_SHOWN = 50


def _case_fingerprints(version: SuiteVersion) -> dict[str, tuple[bytes, ...]]:
    """key -> one short hash per DIFF_FIELDS value, in case order (one streamed query; hashes keep a
    100k-case version's fingerprints small however long its inputs are)."""
    import hashlib
    import json

    out: dict[str, tuple[bytes, ...]] = {}
    rows = version.cases.order_by("position").values_list("key", *DIFF_FIELDS).iterator(chunk_size=2000)
    for key, *values in rows:
        tags = values[DIFF_FIELDS.index("tags")]
        values[DIFF_FIELDS.index("tags")] = sorted(tags or [])  # a tag's place in the list is no change
        out[key] = tuple(
            hashlib.blake2b(
                json.dumps(value, sort_keys=True, ensure_ascii=False).encode(), digest_size=12
            ).digest()
            for value in values
        )
    return out


def version_diff(old: SuiteVersion, new: SuiteVersion, *, shown: int = DIFF_SHOWN) -> dict:
    """Cases added, removed and changed from `old` to `new`, matched by key; a case changed when its
    input, expected output, assertions, tags or split differ. Counts, and the first `shown` of each
    (in case order) with, for a changed case, the names of the fields that differ.

    Versions are immutable, so the result is cached (comparing two 100k-case versions takes seconds).
    """
    # created_at too: a database reset can give a new version the id of an old one.
    stamps = f"{old.created_at.timestamp()}:{new.created_at.timestamp()}"
    cache_key = f"ftvp:version-diff:{old.pk}:{new.pk}:{stamps}:{shown}"
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    before = _case_fingerprints(old)
    after = _case_fingerprints(new)
    added = [key for key in after if key not in before]
    removed = [key for key in before if key not in after]
    changed = []
    for key, prints in after.items():
        previous = before.get(key)
        if previous is not None and previous != prints:
            fields = [f for f, a, b in zip(DIFF_FIELDS, previous, prints, strict=True) if a != b]
            changed.append({"key": key, "fields": fields})
    diff = {
        "old": old.number,
        "new": new.number,
        "added_count": len(added),
        "removed_count": len(removed),
        "changed_count": len(changed),
        "unchanged_count": len(after) - len(added) - len(changed),
        "added": added[:shown],
        "removed": removed[:shown],
        "changed": changed[:shown],
        "shown": shown,
    }
    cache.set(cache_key, diff, timeout=24 * 3600)
    return diff
