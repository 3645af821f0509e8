from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from evaluations.models import Case, Endpoint, Strategy, Suite, SuiteVersion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        """UserFactory(roles=["editor"]): the user holds those role groups (made by migrate)."""
        if create and extracted:
            from django.contrib.auth.models import Group

            groups = list(Group.objects.filter(name__in=extracted))
            missing = set(extracted) - {g.name for g in groups}
            if missing:
                raise LookupError(f"no role group(s) {sorted(missing)}: did migrate run?")
            self.groups.add(*groups)


class SuiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suite

    name = factory.Sequence(lambda n: f"suite-{n}")
    task_type = "generation"


class SuiteVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuiteVersion

    suite = factory.SubFactory(SuiteFactory)
    number = factory.Sequence(lambda n: n + 1)
    task_type = factory.LazyAttribute(lambda version: version.suite.task_type)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    version = factory.SubFactory(SuiteVersionFactory)
    key = factory.Sequence(lambda n: f"case-{n:04d}")
    position = factory.Sequence(lambda n: n)
    input = factory.Sequence(lambda n: f"question {n}")
    expected = factory.Sequence(lambda n: f"answer {n}")
    split = "test"


class EndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Endpoint

    name = factory.Sequence(lambda n: f"endpoint-{n}")
    provider = "openai"
    model = "fake-model"
    base_url = "http://127.0.0.1:9/v1"
    price_in = 1
    price_out = 2
    max_concurrency = 2  # with the tests' FTVP_BATCH_SIZE of 4: batches of 4 cases (see batch_size)
    timeout_seconds = 5
    params = factory.LazyFunction(lambda: {"temperature": 0, "max_tokens": 64})


def strategy(name: str) -> Strategy:
    """A built-in strategy (made again when a transactional test flushed the migration's rows)."""
    return Strategy.objects.get_or_create(name=name, version=1, defaults={"kind": name})[0]
