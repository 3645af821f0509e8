"""The suite page's "Changes in vN": cases added, removed and changed against the previous version."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.urls import reverse

from evaluations.models import Run, SuiteVersion
from evaluations.selectors.suites import version_diff
from evaluations.services.suites import suite_import

V1 = b"""id,input,expected,tags,split
a,What is 2+2?,4,math,test
b,Capital of France?,Paris,geo,test
c,Removed later,x,,test
d,Same text,same,,train
e,Tags reordered,t,x;y,test
g,Untouched,u,,test
"""

V2 = b"""id,input,expected,tags,split,assertions
g,Untouched,u,,test,
a,What is 2+2?,four,math,test,"[{""type"": ""contains"", ""value"": ""four""}]"
b,Capital of France!,Paris,"geo, europe",test,
d,Same text,same,,test,
e,Tags reordered,t,y;x,test,
f,New case,new,,test,
"""


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _import(name: str, data: bytes) -> SuiteVersion:
    return suite_import(name=name, fileobj=io.BytesIO(data), filename="x.csv")


@pytest.fixture
def versions(db) -> tuple[SuiteVersion, SuiteVersion]:
    return _import("capitals", V1), _import("capitals", V2)


def test_added_removed_and_changed_by_key(versions, django_assert_num_queries):
    old, new = versions
    assert (old.number, new.number) == (1, 2)
    with django_assert_num_queries(2):  # one read of each version, however many cases
        diff = version_diff(old, new)
    assert (diff["old"], diff["new"]) == (1, 2)
    assert (diff["added_count"], diff["removed_count"], diff["changed_count"]) == (1, 1, 3)
    assert diff["unchanged_count"] == 2  # e (only the tags' order changed) and g (moved, not changed)
    assert diff["added"] == ["f"] and diff["removed"] == ["c"]
    assert diff["changed"] == [
        {"key": "a", "fields": ["expected", "assertions"]},
        {"key": "b", "fields": ["input", "tags"]},
        {"key": "d", "fields": ["split"]},
    ]
    with django_assert_num_queries(0):  # versions never change: computed once
        assert version_diff(old, new) == diff


def test_identical_versions_have_no_changes(db):
    old, new = _import("same", V1), _import("same", V1)
    diff = version_diff(old, new)
    assert (diff["added_count"], diff["removed_count"], diff["changed_count"]) == (0, 0, 0)
    assert diff["unchanged_count"] == 6


def test_only_the_first_fifty_of_each_are_listed(db):
    rows = [f"k{i:03d},question {i},answer {i},,test\n" for i in range(120)]
    old = _import("big", ("id,input,expected,tags,split\n" + "".join(rows[:60])).encode())
    new = _import("big", ("id,input,expected,tags,split\n" + "".join(rows)).encode())
    diff = version_diff(old, new)
    assert diff["added_count"] == 60 and len(diff["added"]) == 50 and diff["added"][0] == "k060"
    assert diff["removed_count"] == 0 and diff["changed_count"] == 0


def test_the_suite_page_shows_the_changes_of_the_version_shown(auth_client, versions):
    _old, new = versions
    url = reverse("evaluations:suite-detail", args=[new.suite_id])
    page = auth_client.get(url).content.decode()
    assert "Changes in v2" in page and "against v1" in page
    assert "1 added · 1 removed · 3 changed · 2 unchanged" in page
    assert "<code>f</code>" in page and "<code>c</code>" in page
    assert '<code>a</code> <span class="muted">expected, assertions</span>' in page
    assert '<code>b</code> <span class="muted">input, tags</span>' in page
    assert "Changes in v" not in auth_client.get(url, {"version": 1}).content.decode()
    assert "Changes in v2" in auth_client.get(url, {"version": 2}).content.decode()


def test_the_suite_page_caps_long_lists(auth_client, db):
    rows = "".join(f"k{i:03d},question {i},answer {i},,test\n" for i in range(60))
    _import("big", b"id,input,expected,tags,split\nz,q,a,,test\n")
    new = _import("big", ("id,input,expected,tags,split\n" + rows).encode())
    page = auth_client.get(reverse("evaluations:suite-detail", args=[new.suite_id])).content.decode()
    assert "first 50 of 60" in page and "<code>k049</code>" in page and "<code>k050</code>" not in page


def test_a_single_version_has_no_changes_section(auth_client, db):
    version = _import("one", V1)
    page = auth_client.get(reverse("evaluations:suite-detail", args=[version.suite_id])).content.decode()
    assert "Changes in v" not in page


def test_the_suite_page_shows_the_version_each_run_used(auth_client, versions):
    old, new = versions
    first = Run.objects.create(suite_version=old)
    second = Run.objects.create(suite_version=new)
    page = auth_client.get(reverse("evaluations:suite-detail", args=[new.suite_id])).content.decode()
    assert f'Run #{first.pk}</a> <span class="muted">on v1</span>' in page
    assert f'Run #{second.pk}</a> <span class="muted">on v2</span>' in page
