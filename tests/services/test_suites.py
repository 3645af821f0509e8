from __future__ import annotations

import io

import pytest

from evaluations.importers import SuiteFormatError
from evaluations.models import Case, Suite, SuiteVersion
from evaluations.services.suites import suite_import

GOOD = b"id,input,expected,split\na,hello,hi,test\nb,bye,ciao,train\n"


def _import(name="greet", data=GOOD, filename="cases.csv", **kw):
    return suite_import(name=name, fileobj=io.BytesIO(data), filename=filename, **kw)


@pytest.mark.django_db
def test_it_stores_every_case_with_its_split_in_order():
    version = _import()
    assert version.number == 1
    assert list(version.cases.values_list("key", "split", "position")) == [
        ("a", "test", 0),
        ("b", "train", 1),
    ]
    assert version.cases.get(key="a").expected == "hi"


@pytest.mark.django_db
def test_a_second_upload_makes_a_new_version_and_keeps_the_first():
    first = _import()
    second = _import(data=b"input,expected\nnew,case\n")
    assert (first.number, second.number) == (1, 2)
    assert first.cases.count() == 2 and second.cases.count() == 1
    assert Suite.objects.count() == 1


@pytest.mark.django_db
def test_a_bad_file_adds_nothing_not_even_the_suite():
    with pytest.raises(SuiteFormatError) as err:
        _import(data=b"input,expected\nok,fine\n,missing input\n")
    assert "line 3" in str(err.value)
    assert not Suite.objects.exists() and not SuiteVersion.objects.exists() and not Case.objects.exists()


@pytest.mark.django_db
def test_a_bad_reupload_keeps_what_was_stored():
    _import()
    with pytest.raises(SuiteFormatError):
        _import(data=b'input,expected\n"unclosed,quote\n')
    assert SuiteVersion.objects.count() == 1 and Case.objects.count() == 2


@pytest.mark.django_db
def test_a_classification_suite_records_its_label_set():
    data = b"input,expected\ngood,positive\nbad,negative\nmeh,positive\n"
    version = _import(name="sent", data=data, task_type="classification")
    assert version.labels == ["negative", "positive"]


@pytest.mark.django_db
def test_a_classification_suite_needs_two_labels():
    with pytest.raises(SuiteFormatError, match="two distinct labels"):
        _import(name="sent", data=b"input,expected\na,x\nb,x\n", task_type="classification")
    assert not Suite.objects.exists()


@pytest.mark.django_db
def test_a_suite_with_only_train_cases_is_refused():
    with pytest.raises(SuiteFormatError, match="test split"):
        _import(data=b"input,expected,split\na,b,train\n")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "  "}, "cases.csv, field 'name': the suite needs a name"),
        ({"task_type": "poetry"}, "cases.csv, field 'task_type': 'poetry' is not one of"),
        ({"task_type": "classification"}, "cases.csv, field 'expected': a classification suite needs"),
    ],
)
def test_suite_level_errors_name_the_file_and_the_field(db, kw, message):
    data = b"input,expected\nhello,hi\nbye,hi\n"
    with pytest.raises(SuiteFormatError) as caught:
        _import(data=data, **kw)
    assert str(caught.value).startswith(message)
    assert not Suite.objects.exists()


def test_a_promptfoo_config_with_its_files_becomes_a_version_with_template_strategies(
    db, fake_openai, task_queue
):
    from evaluations.importers import SourceFile
    from evaluations.models import Result, Strategy
    from evaluations.services.runs import run_create
    from tests.factories import EndpointFactory
    from tests.fixtures import PEER_FORMATS

    files = [
        SourceFile(
            "promptfooconfig.yaml", (PEER_FORMATS / "promptfoo__help-desk__promptfooconfig.yaml").read_bytes()
        ),
        SourceFile("prompts.txt", (PEER_FORMATS / "promptfoo__help-desk__prompts.txt").read_bytes()),
    ]
    version = suite_import(name="desk", files=files)
    assert version.source_format == "promptfoo"
    templates = list(Strategy.objects.filter(kind="template", name__startswith="desk: ").order_by("name"))
    assert [t.params["template"] for t in templates] == [
        "Answer this library patron as the help desk would: {{message}}",
        "You staff the front desk of a public library. Reply briefly to: {{message}}",
    ]
    # Re-importing the same prompts makes no new strategy versions.
    suite_import(name="desk", files=files)
    assert Strategy.objects.filter(kind="template", name__startswith="desk: ").count() == 2
    # A run renders each case's vars into the template.
    case = version.cases.get(metadata__vars__message="Where can I print my boarding pass?")
    run = run_create(
        suite_version=version, arms=[(EndpointFactory(base_url=fake_openai.base_url), templates[0])]
    )
    task_queue.drain()
    result = Result.objects.get(arm__run=run, case=case)
    rendered = "Answer this library patron as the help desk would: Where can I print my boarding pass?"
    assert result.prompt == [{"role": "user", "content": rendered}]


def test_assertions_ftvp_cannot_run_are_noted_on_import_and_shown_skipped_in_results(
    db, fake_openai, task_queue, auth_client
):
    from django.urls import reverse

    from evaluations.models import Result
    from evaluations.services.runs import run_create
    from tests.factories import EndpointFactory, strategy

    data = (
        b'{"input": "hi", "assertions": [{"type": "contains", "value": "hi"}, '
        b'{"type": "javascript", "value": "output.length > 1"}]}\n'
    )
    version = _import(name="js", data=data, filename="js.jsonl")
    assert version.notes == ["line 1: 'javascript' runs JavaScript: kept, and skipped when scoring"]
    fake_openai.responder = lambda body: "hi there"
    run = run_create(
        suite_version=version, arms=[(EndpointFactory(base_url=fake_openai.base_url), strategy("plain"))]
    )
    task_queue.drain()
    result = Result.objects.get(arm__run=run)
    assert result.passed is True and result.score == 1.0
    assert result.scores["assertions"][1]["skipped"] is True
    page = auth_client.get(reverse("evaluations:run-results", args=[run.pk])).content.decode()
    assert 'class="check skipped"' in page and "javascript (skipped)" in page


def test_imported_default_assertions_belong_to_their_version_not_to_the_suite(db):
    from evaluations.importers import SourceFile
    from evaluations.models import Run
    from evaluations.services.scorings import scoring_create

    config = b"""
defaultTest:
  assert:
    - type: icontains
      value: arr
tests:
  - vars: {body: hello}
"""
    first = suite_import(name="pirates", files=[SourceFile("promptfooconfig.yaml", config)])
    second = _import(name="pirates", data=b"input,expected\nhi,hello\n")
    assert first.default_assertions == [{"type": "icontains", "value": "arr"}]
    assert second.default_assertions == [] and first.suite.default_assertions == []
    run = Run.objects.create(suite_version=first)
    assert scoring_create(run=run).default_assertions == [{"type": "icontains", "value": "arr"}]
    run2 = Run.objects.create(suite_version=second)
    assert scoring_create(run=run2).default_assertions == []
