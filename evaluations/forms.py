from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from evaluations import jsonsafe
from evaluations.importers import FORMAT_CHOICES, SuiteFormatError
from evaluations.importers.sources import upload_size_check
from evaluations.models import (
    AlertKind,
    Endpoint,
    EndpointKind,
    Provider,
    Severity,
    ShadowCompare,
    Strategy,
    Suite,
    SuiteVersion,
    TaskType,
    Urgency,
)
from evaluations.scoring.assertions import validate_assertion
from evaluations.services.endpoints import params_check
from evaluations.services.runs import MAX_REPEATS
from evaluations.strategies import ladder_rank

NUMBER_REMEDY = "give a finite number"
MAX_POSITIVE_INT = 2_147_483_647  # the largest PositiveIntegerField value (PostgreSQL's integer)


class SafeForm(forms.Form):
    """Every form's numbers, checked in one place: one JSON and the database cannot hold (a decimal
    of 1e400, an integer of 400 digits) is refused naming its field, as NaN and infinity already are by
    Django's fields. JSON fields are checked to their depth by JsonSafeField."""

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                problem = jsonsafe.number_problem(value)
                if problem:
                    self.add_error(name, f"{problem}; {NUMBER_REMEDY}")
        return cleaned


class JsonSafeField(forms.JSONField):
    """JSON typed into a form, whose numbers (nested too) JSON and the database can hold: NaN,
    Infinity, 1e400 or an integer of 400 digits is refused with where it is (``[0].threshold``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("decoder", jsonsafe.Decoder)
        super().__init__(**kwargs)

    def validate(self, value):
        super().validate(value)
        found = jsonsafe.unsafe_numbers(value)
        if found:
            raise forms.ValidationError(
                [
                    f"{jsonsafe.dotted(path) or 'the value'}: {problem}; {NUMBER_REMEDY}"
                    for path, _, problem in found
                ]
            )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (a config and the files it refers to)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class SuiteUploadForm(SafeForm):
    name = forms.CharField(max_length=200, help_text="An existing suite's name adds a new version to it.")
    task_type = forms.ChoiceField(
        choices=[("", "keep the suite's (generation for a new suite)"), *TaskType.choices],
        required=False,
        help_text="How outputs are scored: similarity, label accuracy, or JSON equality.",
    )
    file = MultipleFileField(
        help_text="One suite file (ftvp CSV/JSONL/YAML, DeepEval or Langfuse JSON, OpenAI evals or chat "
        "fine-tuning JSONL, promptfoo test CSV/JSONL), or a promptfoo config / OpenAI evals registry "
        "together with the files it refers to, or a zip of them."
    )
    format = forms.ChoiceField(
        choices=FORMAT_CHOICES, required=False, help_text="Detected unless you choose."
    )
    test_fraction = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=0.99,
        help_text="Split the cases at random (seeded): this share is the test split, the rest train.",
    )

    def clean_file(self):
        uploads = self.cleaned_data["file"]
        try:
            upload_size_check([(u.name, u.size) for u in uploads], limit=settings.FTVP_MAX_UPLOAD_BYTES)
        except SuiteFormatError as exc:
            raise forms.ValidationError(str(exc)) from None
        return uploads


class KnowledgeUploadForm(SafeForm):
    file = MultipleFileField(
        label="Files",
        help_text='Text or markdown files (one document each), JSON Lines ({"id", "text", "title"} '
        "per line) or CSV (columns id, text, title), or a zip of them.",
    )
    replace = forms.BooleanField(
        required=False,
        label="Replace all documents",
        help_text="The new version has these documents only; otherwise they are added, a document with "
        "an existing id replacing it.",
    )

    def clean_file(self):
        uploads = self.cleaned_data["file"]
        try:
            upload_size_check([(u.name, u.size) for u in uploads], limit=settings.FTVP_MAX_UPLOAD_BYTES)
        except SuiteFormatError as exc:
            raise forms.ValidationError(str(exc)) from None
        return uploads


class EndpointForm(SafeForm):
    name = forms.CharField(max_length=100)
    provider = forms.ChoiceField(choices=Provider.choices)
    model = forms.CharField(max_length=300, help_text="For local: smollm2-135m-instruct or a model folder.")
    base_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    api_key_env = forms.CharField(
        required=False, max_length=100, help_text="The NAME of the environment variable holding the key."
    )
    kind = forms.ChoiceField(choices=EndpointKind.choices, initial=EndpointKind.BASE)
    base_endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.filter(kind=EndpointKind.BASE), required=False
    )
    price_in = forms.DecimalField(
        min_value=0, initial=0, decimal_places=6, help_text="USD per 1M input tokens"
    )
    price_out = forms.DecimalField(
        min_value=0, initial=0, decimal_places=6, help_text="USD per 1M output tokens"
    )
    price_hour = forms.DecimalField(
        min_value=0, initial=0, decimal_places=6, help_text="USD per compute hour"
    )
    training_cost = forms.DecimalField(
        min_value=0,
        required=False,
        decimal_places=4,
        help_text="one-time USD (fine-tuned); leave empty when unknown: it is then estimated",
    )
    hosting_monthly = forms.DecimalField(
        min_value=0,
        initial=0,
        required=False,
        decimal_places=2,
        help_text="USD a month to host it (self-hosted)",
    )
    max_concurrency = forms.IntegerField(min_value=1, max_value=256, initial=4)
    params = JsonSafeField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Generation parameters as JSON, e.g. {"temperature": 0, "max_tokens": 256}: OpenAI\'s chat '
        "completion parameters within their ranges (temperature 0-2, top_p 0-1, max_tokens at least 1...); "
        "other keys (top_k...) are sent as they are.",
    )

    def clean_hosting_monthly(self):
        return self.cleaned_data["hosting_monthly"] or 0

    def clean_params(self):
        try:
            return params_check(self.cleaned_data.get("params"))
        except ValidationError as exc:
            raise forms.ValidationError(
                [
                    message if field == "params" else f"{field.removeprefix('params.')}: {message}"
                    for field, messages in exc.message_dict.items()
                    for message in messages
                ]
            ) from None


def arms_from_choices(values: list[str]) -> list[tuple[Endpoint, Strategy]]:
    """The ticked "endpoint_id:strategy_id" arm choices (already validated against the choices), as
    (endpoint, strategy) pairs on the ladder: zero-shot, few-shot, system/structured, cot, then
    fine-tuned models."""
    pairs = [tuple(int(x) for x in value.split(":")) for value in values]
    endpoints = Endpoint.objects.in_bulk([e for e, _ in pairs])
    strategies = Strategy.objects.in_bulk([s for _, s in pairs])
    arms = [(endpoints[e], strategies[s]) for e, s in pairs]
    arms.sort(key=lambda a: (*ladder_rank(a[1].kind, fine_tuned=a[0].kind == "fine_tuned"), a[0].name))
    return arms


class RunForm(SafeForm):
    suite_version = forms.ModelChoiceField(queryset=SuiteVersion.objects.select_related("suite"))
    arms = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="Each arm is one endpoint with one strategy."
    )
    repeats = forms.IntegerField(min_value=1, max_value=20, initial=1, help_text="Samples per case and arm.")
    split = forms.ChoiceField(
        choices=[("test", "Test cases: an evaluation"), ("train", "Train cases: a labelling run")],
        initial="test",
        required=False,
        help_text="A labelling run has a teacher (a strong endpoint with its best prompt) answer the "
        "train cases: review its answers, then distil them into a fine-tune.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["suite_version"].queryset = SuiteVersion.objects.select_related("suite").order_by(
            "suite__name", "-number"
        )
        endpoints = list(Endpoint.objects.order_by("name"))
        strategies = list(Strategy.objects.exclude(kind="synthesize").order_by("name", "-version"))
        self.fields["arms"].choices = [
            (f"{e.pk}:{s.pk}", f"{e.name} · {s}") for e in endpoints for s in strategies
        ]

    def clean_arms(self):
        return arms_from_choices(self.cleaned_data["arms"])


class SuiteSettingsForm(SafeForm):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    quality_target = forms.FloatField(
        min_value=0, max_value=1, help_text="The mean score an arm must reach to be good enough."
    )
    pass_threshold = forms.FloatField(min_value=0, max_value=1, help_text="A result passes at this score.")
    monthly_volume = forms.IntegerField(
        min_value=0, max_value=MAX_POSITIVE_INT, help_text="Expected production requests per month."
    )
    default_assertions = JsonSafeField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Checked on every case before its own, e.g. [{"type": "icontains", "value": "Paris"}]. '
        "Empty: similar (generation), label (classification), json-equals (JSON).",
    )
    approvals_required = forms.IntegerField(
        min_value=1,
        max_value=10,
        required=False,
        label="Approvals to sign off",
        help_text="Approvals a run needs to be signed off and become the baseline (1..10; empty keeps "
        "it); requests already made keep the policy they were made under.",
    )

    def __init__(self, *args, policy: int | None = None, may_set_policy: bool = True, **kwargs):
        """`policy`: the suite's approvals_required now; only admins (`may_set_policy`) change it."""
        super().__init__(*args, **kwargs)
        self.policy, self.may_set_policy = policy, may_set_policy
        if not may_set_policy:
            field = self.fields["approvals_required"]
            field.widget.attrs["disabled"] = True  # not sent: the policy is kept
            field.help_text = "Approvals a run needs to be signed off; only an admin can change it."

    def clean_approvals_required(self):
        value = self.cleaned_data["approvals_required"]
        if not self.may_set_policy and value is not None and value != self.policy:
            raise forms.ValidationError("only an admin can change the sign-off policy; ask one to change it")
        return value

    def clean_default_assertions(self):
        value = self.cleaned_data["default_assertions"] or []
        if not isinstance(value, list):
            raise forms.ValidationError("give a JSON list of assertions")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise forms.ValidationError(f"item {index}: give an object with a 'type'")
            problem = validate_assertion(item)
            if problem:
                raise forms.ValidationError(f"item {index}: {problem}")
        return value


class DecisionProfileForm(SafeForm):
    """What the team knows that a run cannot measure; the decision is recomputed with it."""

    quality_target = forms.FloatField(
        min_value=0, max_value=1, help_text="The mean score an arm must reach to be good enough."
    )
    monthly_volume = forms.IntegerField(
        min_value=0, max_value=MAX_POSITIVE_INT, help_text="Production requests per month."
    )
    horizon_months = forms.IntegerField(
        min_value=1, max_value=120, help_text="Months over which costs are compared."
    )
    retrains_per_year = forms.FloatField(
        min_value=0, max_value=365, help_text="How often the task changes (each change: a retraining)."
    )
    examples_available = forms.IntegerField(
        min_value=0,
        max_value=MAX_POSITIVE_INT,
        required=False,
        help_text="Labelled examples to fine-tune on; empty: the train split.",
    )
    training_price_per_1m = forms.DecimalField(
        min_value=0,
        decimal_places=4,
        help_text="USD per 1M training tokens (to estimate unknown training costs).",
    )
    training_epochs = forms.IntegerField(min_value=1, max_value=100, help_text="Epochs, for that estimate.")
    urgency = forms.ChoiceField(choices=Urgency.choices)
    monthly_budget = forms.DecimalField(
        min_value=0, decimal_places=2, required=False, help_text="USD a month; optional."
    )
    traffic_endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"),
        required=False,
        help_text="Measure the volume and the production prompt's tokens on this endpoint's captured "
        "traffic (the last 30 days) instead of the figure above.",
    )
    traffic_tag = forms.CharField(
        max_length=100, required=False, help_text="Only its calls with this tag; empty: all of them."
    )


class EndpointCostForm(SafeForm):
    price_in = forms.DecimalField(min_value=0, decimal_places=6, help_text="USD per 1M input tokens")
    price_out = forms.DecimalField(min_value=0, decimal_places=6, help_text="USD per 1M output tokens")
    price_hour = forms.DecimalField(min_value=0, decimal_places=6, help_text="USD per compute hour")
    hosting_monthly = forms.DecimalField(min_value=0, decimal_places=2, help_text="USD a month (self-hosted)")
    training_cost = forms.DecimalField(
        min_value=0,
        decimal_places=4,
        required=False,
        help_text="One-time USD; empty when unknown (estimated).",
    )


class BreakEvenForm(SafeForm):
    tokens_saved = forms.FloatField(
        min_value=0, help_text="Prompt tokens the fine-tuned model saves per request."
    )
    requests_per_month = forms.FloatField(min_value=0)
    price_per_1k_tokens = forms.FloatField(min_value=0, help_text="USD per 1K input tokens.")
    training_cost = forms.FloatField(min_value=0, help_text="One-time USD.")
    horizon_months = forms.FloatField(min_value=1, max_value=120, initial=12, required=False)
    retrains_per_year = forms.FloatField(min_value=0, max_value=365, initial=0, required=False)
    hosting_per_month = forms.FloatField(min_value=0, initial=0, required=False)


class FineTuneForm(SafeForm):
    """A LoRA fine-tuning job; hyperparameters default to what works for SmolLM2 on a CPU."""

    suite_version = forms.ModelChoiceField(
        queryset=SuiteVersion.objects.none(), help_text="Its train split is the training data."
    )
    backend = forms.ChoiceField(
        choices=[("local", "Local (LoRA on this machine)"), ("openai", "OpenAI-compatible API")],
        initial="local",
        required=False,
        help_text="Local: LoRA on a local base model, trained by a worker on this machine's CPU. "
        "OpenAI-compatible API: the base endpoint's provider fine-tunes it, at the endpoint's base URL "
        "with the key in its key variable (the LoRA fields below do not apply).",
    )
    base_endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.none(),
        help_text="A base model: a local one for the local backend, an OpenAI-compatible one for the API.",
    )
    source = forms.CharField(
        initial="train",
        max_length=500,
        required=False,
        help_text="What it trains on: train (the train split) · run:RUN:ARM (a labelling run's passing "
        "answers; add :all for all of them: distillation from that teacher) · reviewed:RUN (what "
        "reviewers accepted or corrected) · several joined by commas (duplicates removed).",
    )
    epochs = forms.IntegerField(min_value=1, max_value=50, initial=2)
    learning_rate = forms.FloatField(min_value=1e-6, max_value=1, initial=1e-3)
    rank = forms.IntegerField(min_value=1, max_value=256, initial=8, help_text="LoRA rank r.")
    alpha = forms.IntegerField(min_value=1, max_value=1024, initial=16, help_text="LoRA alpha.")
    target_modules = forms.CharField(
        initial="q_proj,k_proj,v_proj,o_proj", help_text="Comma-separated module names to adapt."
    )
    batch_size = forms.IntegerField(min_value=1, max_value=256, initial=8)
    max_length = forms.IntegerField(
        min_value=16, max_value=4096, initial=256, help_text="Tokens per example."
    )
    seed = forms.IntegerField(min_value=0, max_value=MAX_POSITIVE_INT, initial=0)
    learning_rate_multiplier = forms.FloatField(
        min_value=1e-6,
        max_value=10,
        required=False,
        help_text="OpenAI-compatible API only; empty: its default.",
    )
    suffix = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]+$",
        max_length=64,
        required=False,
        help_text="OpenAI-compatible API only: added to the fine-tuned model's name "
        "(letters, digits, - and _).",
    )

    HYPERPARAMETERS = (
        "epochs",
        "learning_rate",
        "rank",
        "alpha",
        "target_modules",
        "batch_size",
        "max_length",
        "seed",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["suite_version"].queryset = SuiteVersion.objects.select_related("suite").order_by(
            "suite__name", "-number"
        )
        self.fields["base_endpoint"].queryset = Endpoint.objects.filter(
            provider__in=[Provider.LOCAL, Provider.OPENAI], kind=EndpointKind.BASE
        ).order_by("name")

    HOSTED_HYPERPARAMETERS = ("epochs", "batch_size", "seed", "learning_rate_multiplier", "suffix")

    def clean_backend(self) -> str:
        return self.cleaned_data.get("backend") or "local"

    def clean_source(self) -> str:
        from evaluations.selectors.training_data import TrainingSourceError, parse_source

        try:
            return ",".join(p.spec for p in parse_source(self.cleaned_data.get("source")))
        except TrainingSourceError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        endpoint, backend = cleaned.get("base_endpoint"), cleaned.get("backend") or "local"
        wanted = Provider.LOCAL if backend == "local" else Provider.OPENAI
        if endpoint is not None and endpoint.provider != wanted:
            self.add_error(
                "base_endpoint",
                f"{endpoint.name} is a {endpoint.get_provider_display()} endpoint; the chosen backend "
                f"fine-tunes a {Provider(wanted).label} base model",
            )
        return cleaned

    def hyperparameters(self) -> dict:
        if self.cleaned_data.get("backend", "local") == "local":
            return {k: self.cleaned_data[k] for k in self.HYPERPARAMETERS}
        # Epochs, batch size and seed show the local trainer's defaults: the provider gets them only
        # when changed here, else it picks its own ("auto").
        given = {k: self.cleaned_data.get(k) for k in self.HOSTED_HYPERPARAMETERS}
        return {
            k: v
            for k, v in given.items()
            if v is not None
            and v != ""
            and (k in ("learning_rate_multiplier", "suffix") or k in self.changed_data)
        }


class AlertChannelForm(SafeForm):
    """An alert channel: where findings are sent (services/alerts.py validates what depends on the kind)."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=AlertKind.choices)
    suite = forms.ModelChoiceField(
        queryset=Suite.objects.none(),
        required=False,
        empty_label="All suites",
        help_text="Only this suite's findings; empty: every suite's.",
    )
    recipients = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="E-mail: addresses, comma separated.",
    )
    url_env = forms.CharField(
        required=False,
        max_length=100,
        label="URL variable",
        help_text="Webhooks: the NAME of the environment variable holding the URL (e.g. "
        "FTVP_SLACK_WEBHOOK_URL), set in the workers' environment and the web's (for Send test). "
        "The URL itself is never stored: a webhook URL is a password (anyone who has it can post), "
        "so it stays out of the database, the pages, the API and the logs.",
    )
    min_severity = forms.ChoiceField(
        choices=Severity.choices,
        initial=Severity.WARNING,
        label="Minimum severity",
        help_text="Findings below it are not sent.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["suite"].queryset = Suite.objects.order_by("name")


class ApiTokenForm(SafeForm):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. CI or a dashboard script.")
    expires_in_days = forms.TypedChoiceField(
        choices=[("", "never"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year")],
        coerce=int,
        empty_value=None,
        required=False,
        label="Expires",
    )


def _arm_choices() -> list[tuple[str, str]]:
    endpoints = list(Endpoint.objects.order_by("name"))
    strategies = list(Strategy.objects.exclude(kind="synthesize").order_by("name", "-version"))
    return [(f"{e.pk}:{s.pk}", f"{e.name} · {s}") for e in endpoints for s in strategies]


class ScheduleForm(SafeForm):
    """A schedule of a suite's runs (services/schedules.py checks the cron, time zone and the rest)."""

    name = forms.CharField(max_length=200, initial="nightly")
    arms = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="Each arm is one endpoint with one strategy."
    )
    suite_version = forms.ModelChoiceField(
        queryset=SuiteVersion.objects.none(),
        required=False,
        empty_label="the latest version when it runs",
        label="Version",
        help_text="Pin a version to compare like with like while the suite grows.",
    )
    cron = forms.CharField(
        max_length=100,
        initial="0 2 * * *",
        help_text="minute hour day-of-month month day-of-week, in the time zone below: "
        "0 2 * * * is 02:00 every night, 30 6 * * 1-5 is 06:30 on weekdays, 0 */6 * * * every 6 hours. "
        "If both day fields are set, a day must match both.",
    )
    timezone = forms.ChoiceField(choices=(), help_text="The time zone the cron times are in.")
    repeats = forms.IntegerField(
        min_value=1, max_value=MAX_REPEATS, initial=1, help_text="Samples per case and arm."
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Untick to pause the schedule.")

    def __init__(self, *args, suite: Suite, **kwargs):
        from zoneinfo import available_timezones

        super().__init__(*args, **kwargs)
        self.fields["suite_version"].queryset = suite.versions.order_by("-number")
        self.fields["suite_version"].label_from_instance = lambda v: f"v{v.number} (pinned)"
        self.fields["arms"].choices = _arm_choices()
        zones = sorted(available_timezones() - {"localtime"})
        self.fields["timezone"].choices = [(z, z) for z in zones]
        self.fields["timezone"].initial = settings.TIME_ZONE

    def clean_arms(self):
        return arms_from_choices(self.cleaned_data["arms"])


class SyntheticForm(SafeForm):
    """A synthetic-examples generation of a suite (services/synthetic.py checks the seeds and the rest)."""

    suite_version = forms.ModelChoiceField(queryset=SuiteVersion.objects.none(), label="Version")
    seeds = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The keys of the seed train cases, separated by commas, spaces or new lines (k of them).",
    )
    n = forms.IntegerField(
        min_value=1, max_value=1000, initial=20, label="N", help_text="Candidates to write."
    )
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"), help_text="The model that writes them."
    )
    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.none(), label="Prompt", help_text="A version of the synthesize strategy."
    )
    threshold = forms.FloatField(
        min_value=0.01, max_value=1, initial=0.92,
        help_text="Cosine similarity above which a candidate is dropped as a near-duplicate (of a case or "
        "an earlier candidate) or a test case's copy.",
    )  # fmt: skip

    def __init__(self, *args, suite: Suite, **kwargs):
        from evaluations.selectors.synthetic import synthesize_strategies

        super().__init__(*args, **kwargs)
        self.fields["suite_version"].queryset = suite.versions.order_by("-number")
        self.fields["suite_version"].label_from_instance = lambda v: f"v{v.number}"
        self.fields["strategy"].queryset = synthesize_strategies()
        if not self.is_bound:
            latest = suite.latest_version()
            self.fields["suite_version"].initial = latest.pk if latest else None
            newest = synthesize_strategies().order_by("-version").first()
            self.fields["strategy"].initial = newest.pk if newest else None

    def clean_seeds(self) -> list[str]:
        keys = [k for k in self.cleaned_data["seeds"].replace(",", " ").split() if k]
        if not keys:
            raise ValidationError("give at least one seed case's key")
        return keys


class SyntheticPromptForm(SafeForm):
    """A new version of the synthetic-examples prompt (the `synthesize` strategy)."""

    system = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000)
    instruction = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=20_000,
        help_text="Placeholders: {task}, {examples} (the seeds as JSON lines), {n}, {labels}, {batch}; "
        "double a literal brace ({{ and }}).",
    )
    per_call = forms.IntegerField(min_value=1, max_value=20, help_text="Pairs asked for in one call.")
    description = forms.CharField(required=False, max_length=2000, help_text="What changed, for the list.")


class ShadowForm(SafeForm):
    """Shadow evaluation: mirror a share of an endpoint's captured calls to a candidate."""

    name = forms.CharField(max_length=100)
    live_endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"), help_text="Whose captured calls are mirrored."
    )
    candidate = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"), help_text="The endpoint they are sent to as well."
    )
    share = forms.FloatField(
        min_value=0.001, max_value=1, initial=0.1, help_text="The share of calls, (0, 1]."
    )
    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.filter(kind__in=["plain", "system", "cot", "structured"]).order_by("name"),
        required=False,
        help_text="How the candidate is prompted; empty: the live requests as they are.",
    )
    compare = forms.ChoiceField(choices=ShadowCompare.choices, initial=ShadowCompare.ASSERTIONS)
    suite = forms.ModelChoiceField(
        queryset=Suite.objects.order_by("name"),
        required=False,
        help_text="Whose assertions and threshold compare the pairs (empty: embedding similarity).",
    )


class CaptureTokenForm(SafeForm):
    """A capture token for an application (docs/traffic.md); the token is shown once."""

    name = forms.CharField(max_length=100, help_text="The application, e.g. support-bot.")
    endpoints = forms.ModelMultipleChoiceField(
        queryset=Endpoint.objects.order_by("name"), help_text="The endpoints it may call through the proxy."
    )
    rate_per_minute = forms.IntegerField(
        min_value=0,
        max_value=1_000_000,
        initial=600,
        help_text="Calls a minute (per proxy process); 0: no limit.",
    )
    tags = forms.CharField(
        max_length=500, required=False, help_text="Comma-separated tags every call it makes is recorded with."
    )
    expires_in_days = forms.TypedChoiceField(
        choices=[("", "never"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year")],
        coerce=int,
        empty_value=None,
        required=False,
        label="Expires",
    )

    def clean_tags(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class TrafficToSuiteForm(SafeForm):
    """Sample captured chat calls into a suite's next version (services/traffic_suite.py)."""

    suite = forms.ModelChoiceField(
        queryset=Suite.objects.order_by("name"), required=False, help_text="An existing suite, or:"
    )
    suite_name = forms.CharField(
        max_length=200, required=False, label="New suite", help_text="a new suite's name."
    )
    endpoint = forms.CharField(max_length=100, required=False, help_text="Only calls to this endpoint.")
    tag = forms.CharField(max_length=100, required=False, help_text="Only calls with this tag.")
    date_from = forms.DateField(required=False, help_text="YYYY-MM-DD")
    date_to = forms.DateField(required=False, help_text="YYYY-MM-DD")
    sample_size = forms.IntegerField(min_value=1, max_value=10_000, initial=100, help_text="Distinct inputs.")
    seed = forms.CharField(max_length=100, initial="0", help_text="The same seed, the same sample.")
    test_share = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.2,
        help_text="Share of inputs in the test split (by a hash of the input).",
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("suite") and not (cleaned.get("suite_name") or "").strip():
            self.add_error("suite_name", "Pick a suite or name a new one.")
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_from", "After the end date.")
        return cleaned
