"""The compare page on the issue's acceptance cases: one arm truly better, and two equal arms."""

from __future__ import annotations

import random
import re

import pytest
from django.urls import reverse

from evaluations.models import Arm, Case, Result
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.runs import ArmSpec, finished_run, suite_version

LABELS = ("positive", "negative")


def _responder(right_sets):
    def answer(body):
        i = int(body["messages"][-1]["content"].split()[1])
        truth = LABELS[i % 2]
        return truth if i in right_sets[body["model"]] else LABELS[1 - i % 2]

    return answer


@pytest.fixture
def two_arm_run(db, fake_openai, task_queue, settings):
    settings.FTVP_BATCH_SIZE = 100

    def make(right_sets, n=300):
        fake_openai.responder = _responder(right_sets)
        version = SuiteVersionFactory(suite__task_type="classification", labels=list(LABELS))
        for i in range(n):
            CaseFactory(
                version=version, key=f"r{i:03d}", position=i, input=f"review {i}", expected=LABELS[i % 2]
            )
        arms = [
            (EndpointFactory(name=m, model=m, base_url=fake_openai.base_url), strategy("plain"))
            for m in right_sets
        ]
        run = run_create(suite_version=version, arms=arms)
        task_queue.drain()
        return list(Arm.objects.filter(run=run).order_by("position"))

    return make


def test_a_truly_better_arm_is_called_better_with_p_under_001(auth_client, two_arm_run):
    rng = random.Random(1)
    cases = list(range(300))
    weak, strong = set(rng.sample(cases, 180)), set(rng.sample(cases, 270))  # 60% and 90% right
    base, better = two_arm_run({"weak": weak, "strong": strong})
    page = auth_client.get(reverse("evaluations:compare"), {"arm": [base.pk, better.pk]}).content.decode()
    assert page.count('class="verdict better"') == 2  # scores (Wilcoxon) and pass/fail (McNemar)
    p_values = [float(p) for p in re.findall(r'<td class="num">(0\.\d{4})</td>', page)]
    assert p_values and all(p < 0.01 for p in p_values)
    assert "300 shared cases" in page


def test_two_equal_arms_show_no_significant_difference_and_the_cases_needed(auth_client, two_arm_run):
    rng = random.Random(2)
    cases = list(range(300))
    a, b = set(rng.sample(cases, 210)), set(rng.sample(cases, 216))  # 70% vs 72% right
    first, second = two_arm_run({"a": a, "b": b})
    page = auth_client.get(reverse("evaluations:compare"), {"arm": [first.pk, second.pk]}).content.decode()
    assert 'class="verdict no-significant-difference"' in page
    needed = [int(n) for n in re.findall(r"~(\d+) cases needed", page)]
    assert needed and all(n > 300 for n in needed)


def test_the_filters_show_flipped_cases_and_drops(auth_client, two_arm_run):
    first, second = two_arm_run({"a": {0, 1, 2, 3}, "b": {0, 1, 4, 5}}, n=8)
    url = reverse("evaluations:compare")
    flipped = auth_client.get(url, {"arm": [first.pk, second.pk], "view": "flipped"}).content.decode()
    assert re.findall(r"<code>(r\d+)</code>", flipped) == ["r002", "r003"]
    everything = auth_client.get(url, {"arm": [first.pk, second.pk]}).content.decode()
    assert len(re.findall(r"<code>(r\d+)</code>", everything)) == 8
    # A wrong label is shown as a word-level diff against the expected one.
    assert '<span class="d-missing">' in everything and '<span class="d-added">' in everything


def test_comparing_needs_two_arms_of_one_suite(auth_client, two_arm_run):
    (first, _), other = two_arm_run({"a": {0}, "b": {1}}, n=2), two_arm_run({"c": {0}}, n=2)
    url = reverse("evaluations:compare")
    assert "at least two arms" in auth_client.get(url, {"arm": [first.pk]}).content.decode()
    response = auth_client.get(url, {"arm": [first.pk, other[0].pk]})
    assert response.status_code == 400 and "same suite" in response.content.decode()
    assert auth_client.get(url).status_code == 200


def test_two_arms_with_exactly_the_same_accuracy_say_so(auth_client, two_arm_run):
    rng = random.Random(3)
    cases = list(range(300))
    first, second = two_arm_run({"a": set(rng.sample(cases, 210)), "b": set(rng.sample(cases, 210))})
    page = auth_client.get(reverse("evaluations:compare"), {"arm": [first.pk, second.pk]}).content.decode()
    assert page.count('class="verdict no-significant-difference"') == 2
    assert "no difference observed" in page


def test_outputs_and_expected_outputs_are_escaped_in_the_word_diffs(auth_client, db):
    version = suite_version(test_cases=2)
    Case.objects.filter(version=version).update(expected="<b>bold</b> & more")
    endpoint = EndpointFactory()
    runs = [finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0])]) for _ in range(2)]
    Result.objects.filter(arm__run=runs[1]).update(output='<script>alert("x")</script> & more')
    arms = [run.arms.get().pk for run in runs]
    html = auth_client.get(reverse("evaluations:compare"), {"arm": arms}).content.decode()
    assert "<script>alert" not in html and "<b>bold" not in html
    assert '<span class="d-added">alert(&quot;x&quot;)&lt;/script</span>' in html
    assert '<span class="d-missing">&lt;b&gt;bold&lt;/b&gt;</span>' in html
    assert '<span class="d-same">&gt; &amp; more</span>' in html
