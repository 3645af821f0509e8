"""ftvp's data and its invariants. Writes live in services/, reads in selectors/"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class TaskType(models.TextChoices):
    GENERATION = "generation", "Generation"
    CLASSIFICATION = "classification", "Classification"
    JSON = "json", "JSON"


class Urgency(models.TextChoices):
    NOW = "now", "Needed within days"
    SOON = "soon", "Needed within weeks"
    LATER = "later", "No deadline"


class Suite(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=20, choices=TaskType.choices, default=TaskType.GENERATION)
    quality_target = models.FloatField(
        default=0.8, help_text="The mean score an arm must reach to be good enough (0..1)."
    )
    pass_threshold = models.FloatField(
        default=0.8, help_text="A result passes when its score reaches this (0..1)."
    )
    monthly_volume = models.PositiveIntegerField(
        default=10_000, help_text="Expected production requests per month."
    )
    default_assertions = models.JSONField(
        default=list,
        blank=True,
        help_text="Assertions applied to every case (before the case's own); empty: by task type.",
    )
    # The decision profile: what the team knows that a run cannot measure.
    horizon_months = models.PositiveIntegerField(
        default=12, help_text="Months over which costs are compared (1..120)."
    )
    retrains_per_year = models.FloatField(
        default=0, help_text="How often the task changes, each change a retraining of a fine-tuned model."
    )
    examples_available = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Labelled examples available to fine-tune; empty: the train split's size.",
    )
    training_price_per_1m = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("3.00"),
        help_text="USD per 1M training tokens, to estimate a fine-tune whose training cost is unknown.",
    )
    training_epochs = models.PositiveIntegerField(default=3, help_text="Epochs, for that estimate.")
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.SOON)
    traffic_endpoint = models.ForeignKey(
        "Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Measure the monthly volume and the prompt's tokens from this endpoint's captured "
        "traffic (the capture proxy) instead of the figures typed in.",
    )  # fmt: skip
    traffic_tag = models.CharField(
        max_length=100, blank=True, help_text="Only the traffic calls with this tag (empty: all of them)."
    )
    baseline_run = models.ForeignKey(
        "Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run every finished run is compared with, arm by arm.",
    )
    regression_tolerance = models.FloatField(
        default=0.02,
        help_text="A significant drop larger than this (0..1) against the baseline is a regression.",
    )
    monthly_budget = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="USD a month; optional."
    )
    approvals_required = models.PositiveIntegerField(
        default=1,
        help_text="Approvals a run needs to be signed off (and become the baseline); 1..10.",
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("set_baseline", "Can make a run the baseline without a sign-off")]
        constraints = [
            models.CheckConstraint(
                condition=Q(quality_target__gte=0) & Q(quality_target__lte=1), name="suite_target_0_1"
            ),
            models.CheckConstraint(
                condition=Q(approvals_required__gte=1) & Q(approvals_required__lte=10),
                name="suite_approvals_1_10",
            ),
            models.CheckConstraint(
                condition=Q(pass_threshold__gte=0) & Q(pass_threshold__lte=1), name="suite_threshold_0_1"
            ),
            models.CheckConstraint(
                condition=Q(horizon_months__gte=1) & Q(horizon_months__lte=120), name="suite_horizon_1_120"
            ),
            models.CheckConstraint(
                condition=Q(regression_tolerance__gte=0) & Q(regression_tolerance__lte=1),
                name="suite_tolerance_0_1",
            ),
            models.CheckConstraint(
                condition=Q(retrains_per_year__gte=0) & Q(retrains_per_year__lte=365),
                name="suite_retrains_0_365",
            ),
            models.CheckConstraint(
                condition=Q(training_price_per_1m__gte=0) & Q(training_epochs__gte=1),
                name="suite_training_estimate_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> SuiteVersion | None:
        return self.versions.order_by("-number").first()


class SuiteVersion(models.Model):
    """Immutable once created: editing or re-uploading a suite makes a new version."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source_name = models.CharField(max_length=255, blank=True)
    source_format = models.CharField(max_length=40, blank=True)
    # The task type this version is scored as: fixed with the version, so retyping the suite later
    # never rescores its old versions or a run in progress.
    task_type = models.CharField(max_length=20, choices=TaskType.choices, default=TaskType.GENERATION)
    labels = models.JSONField(default=list, blank=True, help_text="Label set of a classification suite.")
    notes = models.JSONField(
        default=list, blank=True, help_text="What the import reported, e.g. assertions kept but skipped."
    )
    default_assertions = models.JSONField(
        default=list,
        blank=True,
        help_text="Assertions the imported file set for every case (promptfoo defaultTest); they take the "
        "place of the suite's defaults for this version.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suite", "-number"]
        constraints = [models.UniqueConstraint(fields=["suite", "number"], name="suiteversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.suite.name} v{self.number}"


class KnowledgeDoc(models.Model):
    """A document the `rag` strategies retrieve from: part of its suite version, immutable with it.

    `doc_id` is the name a case's `metadata.gold_docs` refers to (recall@k and MRR)."""

    version = models.ForeignKey(SuiteVersion, on_delete=models.CASCADE, related_name="knowledge")
    doc_id = models.CharField(max_length=200)
    title = models.CharField(max_length=300, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    text = models.TextField()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "doc_id"], name="knowledgedoc_unique_id")]

    def __str__(self) -> str:
        return self.doc_id


class KnowledgeChunk(models.Model):
    """A passage of a knowledge document, as retrieved and put into a prompt."""

    version = models.ForeignKey(SuiteVersion, on_delete=models.CASCADE, related_name="chunks")
    doc = models.ForeignKey(KnowledgeDoc, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField(help_text="The chunk's place in its document, from 0.")
    text = models.TextField()

    class Meta:
        ordering = ["version", "doc", "position"]
        constraints = [
            models.UniqueConstraint(fields=["doc", "position"], name="knowledgechunk_unique_position")
        ]

    def __str__(self) -> str:
        return f"{self.doc.doc_id}#{self.position}"


class Split(models.TextChoices):
    TEST = "test", "Test"
    TRAIN = "train", "Train"


class Case(models.Model):
    version = models.ForeignKey(SuiteVersion, on_delete=models.CASCADE, related_name="cases")
    key = models.CharField(max_length=200)
    position = models.PositiveIntegerField()
    input = models.JSONField(help_text="A string, or a list of chat messages {role, content}.")
    expected = models.JSONField(null=True, blank=True, help_text="A string, or a list of acceptable outputs.")
    assertions = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TEST)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="case_unique_key"),
            models.UniqueConstraint(fields=["version", "position"], name="case_unique_position"),
        ]
        indexes = [models.Index(fields=["version", "split", "position"])]

    def __str__(self) -> str:
        return self.key

    @property
    def expected_list(self) -> list[str]:
        return expected_as_list(self.expected)


def expected_as_list(expected: object) -> list[str]:
    """A case's `expected` value (None, one output, or a list of acceptable ones) as a list of texts."""
    if expected is None:
        return []
    if isinstance(expected, list):
        return [str(x) for x in expected]
    return [str(expected)]


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    LOCAL = "local", "Local (transformers)"


class EndpointKind(models.TextChoices):
    BASE = "base", "Base model"
    FINE_TUNED = "fine_tuned", "Fine-tuned model"


class Endpoint(models.Model):
    """A model to call. The API key itself is never stored: only the name of its env variable."""

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=10, choices=Provider.choices)
    model = models.CharField(max_length=300)
    base_url = models.URLField(max_length=500, blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable that holds the API key."
    )
    params = models.JSONField(default=dict, blank=True, help_text="Generation parameters, e.g. temperature.")
    price_in = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, help_text="USD per 1M input tokens."
    )
    price_out = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, help_text="USD per 1M output tokens."
    )
    price_hour = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, help_text="USD per compute hour (local models)."
    )
    kind = models.CharField(max_length=12, choices=EndpointKind.choices, default=EndpointKind.BASE)
    base_endpoint = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="fine_tunes"
    )
    training_cost = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="One-time USD to train a fine-tuned model; empty when unknown (then estimated).",
    )
    hosting_monthly = models.DecimalField(
        max_digits=12, decimal_places=2, default=0, help_text="USD a month to host it (self-hosted models)."
    )
    adapter = models.CharField(
        max_length=300,
        blank=True,
        help_text="Local fine-tunes: the LoRA adapter's folder, relative to the media directory.",
    )
    price_train = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=0,
        help_text="USD per 1M training tokens (hosted fine-tuning of this base model).",
    )
    max_concurrency = models.PositiveIntegerField(default=4)
    timeout_seconds = models.PositiveIntegerField(default=60)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("change_endpoint_connection", "Can set an endpoint's provider, model, base URL and key variable")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="fine_tuned") | Q(base_endpoint__isnull=True),
                name="endpoint_base_only_for_fine_tuned",
            ),
            models.CheckConstraint(condition=Q(max_concurrency__gte=1), name="endpoint_concurrency_positive"),
            models.CheckConstraint(
                condition=Q(price_in__gte=0)
                & Q(price_out__gte=0)
                & Q(price_hour__gte=0)
                & Q(hosting_monthly__gte=0)
                & (Q(training_cost__isnull=True) | Q(training_cost__gte=0)),
                name="endpoint_prices_non_negative",
            ),
            models.CheckConstraint(condition=Q(price_train__gte=0), name="endpoint_price_train_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class StrategyKind(models.TextChoices):
    ZERO_SHOT = "zero-shot", "Zero-shot"
    FEW_SHOT = "few-shot", "Few-shot"
    FEW_SHOT_NEAREST = "few-shot-nearest", "Few-shot (nearest examples)"
    FEW_SHOT_OPTIMIZED = "few-shot-optimized", "Few-shot (optimised examples, frozen)"
    RAG = "rag", "Retrieval (RAG)"
    RAG_FEW_SHOT_NEAREST = "rag+few-shot-nearest", "Retrieval + nearest few-shot"
    SYSTEM = "system", "System prompt"
    COT = "cot", "Chain-of-thought"
    STRUCTURED = "structured", "Structured JSON"
    PLAIN = "plain", "Plain (fine-tuned models)"
    TEMPLATE = "template", "Template (imported prompt with the case's vars)"
    SYNTHESIZE = "synthesize", "Synthetic examples (the generation prompt; never a run's arm)"


class Strategy(models.Model):
    """How a case becomes a prompt. Versioned like suites: a change makes a new version."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=StrategyKind.choices)
    params = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        verbose_name_plural = "strategies"
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="strategy_unique_version")]

    def __str__(self) -> str:
        return self.name if self.version == 1 else f"{self.name}@v{self.version}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Trigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    API = "api", "API"
    CI = "ci", "CI"
    # Captured traffic's answers as a run (nothing generated): reviewed, then expected outputs or
    # training data; never a decision's, a trend's or a baseline's evidence.
    CAPTURE = "capture", "Captured traffic"


class Run(models.Model):
    FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

    suite_version = models.ForeignKey(SuiteVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    repeats = models.PositiveIntegerField(default=1)
    split = models.CharField(
        max_length=5, choices=Split.choices, default=Split.TEST,
        help_text="The cases run: test (an evaluation), or train (a labelling run: a teacher's answers "
        "on the train split, reviewed before they train anything; never a decision's evidence).",
    )  # fmt: skip
    use_cache = models.BooleanField(
        default=True,
        help_text="Serve temperature-0 answers already seen from the cache. Off for runs that must call "
        "the model (a model can change behind an unchanged endpoint).",
    )
    expected_results = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_scored = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    schedule = models.ForeignKey(
        "Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs",
        help_text="The schedule that started this run (trigger `schedule`).",
    )  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    analysed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When trends, the baseline comparison, drift and alerts were done for the run as scored.",
    )  # fmt: skip
    analysis_sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the analysis task was last sent (a lease for the recovery sweep).",
    )
    analysis_error = models.TextField(blank=True, help_text="Steps of the analysis that failed, and why.")
    signed_off_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the sign-off policy was met: the run is then locked (no delete, no re-score).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(repeats__gte=1), name="run_repeats_positive"),
            models.CheckConstraint(
                condition=Q(batches_scored__lte=models.F("batches_total")), name="run_batches_le_total"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.suite_version}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


def run_is_evidence(run: Run) -> bool:
    """An evaluation of the test split: what decisions, trends, baselines and sign-offs are about (a
    labelling run answers the train split; a captured run holds production's answers)."""
    return run.split == Split.TEST and run.trigger != Trigger.CAPTURE


class Arm(models.Model):
    """One endpoint x strategy of a run; `summary` holds its aggregates once the run is finalized."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="arms")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="arms")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="arms")
    position = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "endpoint", "strategy"], name="arm_unique_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name}:{self.strategy}"

    @property
    def label(self) -> str:
        return f"{self.endpoint.name} · {self.strategy}"


class Batch(models.Model):
    """A slice of an arm's cases: generated on the `llm` queue, then scored on `scoring`.

    The conditional updates of `generated_at` and `scored_at` make each step count once even when
    a task runs twice (redelivery after a killed worker); `heartbeat_at` tells a live batch from a
    stalled one.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    case_ids = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    # The lease of whichever step (generate, then score) holds the batch now; None when nobody does.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "arm", "index"]
        constraints = [models.UniqueConstraint(fields=["arm", "index"], name="batch_unique_index")]

    def __str__(self) -> str:
        return f"batch {self.index} of {self.arm}"


class Result(models.Model):
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="results")
    sample = models.PositiveIntegerField(default=0)
    prompt = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    compute_seconds = models.FloatField(
        null=True, blank=True, help_text="Local models: this request's share of the compute time."
    )
    cost = models.FloatField(default=0)
    error = models.TextField(blank=True)
    cached = models.BooleanField(default=False)
    retrieved = models.JSONField(
        default=list, blank=True,
        help_text="Retrieval strategies: the chunks put into the prompt, best first "
        "({doc, chunk, score}).",
    )  # fmt: skip
    scores = models.JSONField(default=dict, blank=True)
    scoring = models.ForeignKey("Scoring", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # No default ordering: it would join arm, run and case into every query on the hot paths.
        constraints = [
            models.UniqueConstraint(fields=["arm", "case", "sample"], name="result_unique_arm_case_sample"),
        ]
        indexes = [
            models.Index(fields=["arm", "passed"]),
            # The few failed calls of an arm (progress counts them on every poll), not all its results.
            models.Index(fields=["arm"], condition=~Q(error=""), name="result_errors_by_arm"),
        ]

    def __str__(self) -> str:
        return f"{self.arm} / {self.case.key} #{self.sample}"


class Scoring(models.Model):
    """One scoring pass over a run's results: the first when the run ran, then each re-score.

    Results carry the scores of the latest scoring; each scoring keeps its configuration and the
    per-arm summaries it produced, so a run keeps the history of how it was scored.
    """

    class Trigger(models.TextChoices):
        RUN = "run", "Run"
        RESCORE = "rescore", "Re-score"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scorings")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.RUN)
    embedder = models.CharField(max_length=300, blank=True)
    default_assertions = models.JSONField(default=list, blank=True)
    scorer_versions = models.JSONField(default=dict, blank=True)
    summaries = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The lease of the pairwise judging step while one holds it."
    )

    class Meta:
        ordering = ["run", "-number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="scoring_unique_number")]

    def __str__(self) -> str:
        return f"scoring {self.number} of run #{self.run_id}"


class EmbeddingCache(models.Model):
    """Embeddings by (model, sha256 of text); expected outputs are embedded once per text."""

    model = models.CharField(max_length=100)
    text_hash = models.CharField(max_length=64)
    vector = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "text_hash"], name="embedding_unique")]

    def __str__(self) -> str:
        return f"{self.model}:{self.text_hash[:12]}"


class CompletionCache(models.Model):
    """Completions at temperature 0 by content hash of (endpoint model, params, messages)."""

    key = models.CharField(max_length=64, unique=True)
    output = models.TextField()
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost = models.FloatField(null=True, blank=True, help_text="Compute cost when the provider measured it.")
    compute_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key[:12]


class WorkerBeat(models.Model):
    """A worker process's heartbeat, so `evaluate --wait` knows whether one is running.

    Written every FTVP_WORKER_BEAT_SECONDS and removed when the worker stops; the process id and
    host let a reader on the same machine check that the process still runs (a killed worker's row
    stays behind): see evaluations/selectors/workers.py."""

    hostname = models.CharField(max_length=255, unique=True)  # Celery's node name, e.g. evaluate-3@box
    queues = models.CharField(max_length=200, blank=True)
    last_seen = models.DateTimeField()
    pid = models.PositiveIntegerField(null=True, blank=True)
    # Where `pid` means something: the machine's name and, on Linux, its process-id namespace.
    host = models.CharField(max_length=255, blank=True)
    # In warm shutdown: takes no new work, finishes (and holds the leases of) the tasks in hand.
    stopping = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.hostname


class FineTuneStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Training"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class FineTuneBackend(models.TextChoices):
    LOCAL = "local", "Local LoRA"
    OPENAI = "openai", "OpenAI-compatible fine-tuning API"


class FineTuneJob(models.Model):
    """Fine-tuning on a suite's train split: LoRA of a local base model on the `training` queue, or a
    job of an OpenAI-compatible fine-tuning API followed by a poller (docs/finetuning.md)."""

    suite_version = models.ForeignKey(SuiteVersion, on_delete=models.PROTECT, related_name="finetunes")
    base_endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="finetune_jobs")
    backend = models.CharField(max_length=10, choices=FineTuneBackend.choices, default=FineTuneBackend.LOCAL)
    hyperparameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=FineTuneStatus.choices, default=FineTuneStatus.QUEUED)
    examples = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    losses = models.JSONField(default=list, blank=True, help_text="Training loss per step.")
    compute_seconds = models.FloatField(null=True, blank=True)
    training_cost = models.FloatField(null=True, blank=True)
    adapter = models.CharField(max_length=300, blank=True, help_text="Relative to the media directory.")
    endpoint = models.OneToOneField(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="finetune_job"
    )
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Hosted jobs (backend openai): the remote ids, stored as soon as they are known so that nothing
    # is uploaded or submitted twice; what the poller saw; when it looks next.
    remote_job_id = models.CharField(max_length=200, blank=True)
    remote_training_file = models.CharField(max_length=200, blank=True)
    remote_validation_file = models.CharField(max_length=200, blank=True)
    remote_status = models.CharField(max_length=30, blank=True)
    submitted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the job was first sent (a lost answer is looked up, not re-sent).",
    )
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    poll_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="Hosted jobs: until when the poll working on it holds it."
    )
    trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    validation_examples = models.PositiveIntegerField(default=0)
    events = models.JSONField(default=list, blank=True, help_text="The provider's job events, oldest first.")
    checkpoints = models.JSONField(
        default=list, blank=True, help_text="Metrics per step: train/valid loss and token accuracy."
    )
    poll_attempts = models.PositiveIntegerField(
        default=0, help_text="The poller's token: looks claimed so far."
    )
    poll_interval = models.FloatField(default=0, help_text="Seconds between the last two looks.")
    next_poll_at = models.DateTimeField(
        null=True, blank=True, help_text="When the poller looks next; empty once nothing is left to follow."
    )
    # What the job trains on (docs/finetuning.md, training sources): {"spec": "train" | "run:R:A" |
    # "reviewed:R" | several joined by ",", "parts": [{kind, ..., examples}], "examples",
    # "duplicates", "sample": [{"input", "answer", "from"}]}; empty for jobs from before sources.
    source = models.JSONField(default=dict, blank=True)
    data_cost = models.FloatField(
        null=True, blank=True,
        help_text="What making the training data cost (USD): the teacher's labelling run, synthetic "
        "generation; part of the training cost on the decision page.",
    )  # fmt: skip
    teacher_endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Distillation: the endpoint whose answers it trains on (evaluated next to the student).",
    )  # fmt: skip
    teacher_strategy = models.ForeignKey(
        Strategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(step__lte=models.F("total_steps")), name="finetune_step_le_total"
            )
        ]
        indexes = [models.Index(fields=["backend", "status"])]

    def __str__(self) -> str:
        return f"Fine-tune #{self.pk} of {self.base_endpoint}"

    @property
    def is_finished(self) -> bool:
        return self.status in (FineTuneStatus.SUCCEEDED, FineTuneStatus.FAILED, FineTuneStatus.CANCELLED)

    @property
    def percent(self) -> float:
        return round(100.0 * self.step / self.total_steps, 1) if self.total_steps else 0.0


class FindingKind(models.TextChoices):
    REGRESSION = "regression", "Regression"
    DRIFT = "drift", "Output drift"
    TREND = "trend", "Score trend"
    THRESHOLD = "threshold", "Below threshold"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Finding(models.Model):
    """Something a team should know about a run: a regression against the baseline, drift, a breach."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="findings")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="findings")
    arm = models.ForeignKey(Arm, null=True, blank=True, on_delete=models.CASCADE, related_name="findings")
    baseline_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=FindingKind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    title = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "arm", "kind"], name="finding_unique_per_arm")]
        indexes = [models.Index(fields=["suite", "acknowledged_at", "created_at"])]

    def __str__(self) -> str:
        return self.title


class Schedule(models.Model):
    """Runs of a suite on a cron schedule (nightly at 02:00 by default), fired by celery beat.

    The beat entry is a django-celery-beat PeriodicTask kept in step by services/schedules.py;
    a scheduled run is an ordinary run with trigger `schedule` that always calls the model."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200)
    suite_version = models.ForeignKey(
        SuiteVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Pinned version; empty means the suite's latest version when the schedule fires.",
    )  # fmt: skip
    cron = models.CharField(
        max_length=100, default="0 2 * * *", help_text="minute hour day-of-month month day-of-week"
    )
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    repeats = models.PositiveIntegerField(default=1)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suite", "name"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "name"], name="schedule_unique_name"),
            models.CheckConstraint(condition=Q(repeats__gte=1), name="schedule_repeats_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.suite.name}: {self.name} ({self.cron})"


class ScheduleArm(models.Model):
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="arms")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="+")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["schedule", "position"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "endpoint", "strategy"], name="schedule_arm_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name}:{self.strategy}"


class TrendPoint(models.Model):
    """One arm of a finished run, as the trends page reads it: aggregates stored at finalize so a
    page over years of nightly runs never touches raw results. Series are keyed by endpoint and
    strategy name; fingerprints and versions mark where the suite, a prompt or an endpoint changed."""

    arm = models.OneToOneField(Arm, on_delete=models.CASCADE, related_name="trend")
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="trend_points")
    at = models.DateTimeField(help_text="When the run finished.")
    series = models.CharField(max_length=250, help_text="endpoint name · strategy name")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="+")
    suite_version_number = models.PositiveIntegerField()
    strategy_version = models.PositiveIntegerField(default=1)
    endpoint_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the endpoint's model, URL and parameters."
    )
    mean_score = models.FloatField(null=True, blank=True)
    score_ci_low = models.FloatField(null=True, blank=True)
    score_ci_high = models.FloatField(null=True, blank=True)
    pass_rate = models.FloatField(null=True, blank=True)
    cost_per_request = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    completion_tokens_mean = models.FloatField(null=True, blank=True)
    output_chars_mean = models.FloatField(null=True, blank=True)
    drift_auc = models.FloatField(null=True, blank=True, help_text="Output drift against the baseline.")
    centroid_distance = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["suite", "at"]
        indexes = [models.Index(fields=["suite", "at"])]

    def __str__(self) -> str:
        return f"{self.series} @ {self.at:%Y-%m-%d}"


class AlertKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (JSON)"
    SLACK = "slack", "Slack-compatible webhook"


class AlertChannel(models.Model):
    """Where findings are sent. A webhook URL can carry a secret (Slack's do), so the database
    holds only the NAME of the environment variable with the URL, like an endpoint's API key."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=AlertKind.choices)
    suite = models.ForeignKey(
        Suite, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_channels",
        help_text="Empty: findings of every suite.",
    )  # fmt: skip
    recipients = models.TextField(blank=True, help_text="E-mail: addresses, comma separated.")
    url_env = models.CharField(
        max_length=100, blank=True, help_text="Webhook: name of the environment variable holding the URL."
    )
    min_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class AlertDelivery(models.Model):
    """One finding sent (or tried) on one channel: at most one success each, retried on failure."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the send task was last enqueued (a lease for recovery)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["finding", "channel"], name="delivery_unique_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.finding_id} -> {self.channel_id}: {self.status}"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored: the token itself is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'CI'.")
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Verdict(models.TextChoices):
    CORRECT = "correct", "correct"
    INCORRECT = "incorrect", "incorrect"
    CORRECTED = "corrected", "corrected output"
    COMMENT = "comment", "comment only"


class Review(models.Model):
    """One reviewer's verdict on one result: correct, incorrect, a corrected output, or a comment only."""

    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="reviews")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    corrected_output = models.TextField(blank=True, help_text="What the model should have answered.")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["result", "reviewer"], name="review_one_per_reviewer"),
            models.CheckConstraint(
                condition=~Q(verdict="corrected") | ~Q(corrected_output=""),
                name="review_corrected_has_output",
            ),
        ]
        indexes = [models.Index(fields=["run", "result"])]

    def __str__(self) -> str:
        return f"{self.verdict} on result {self.result_id}"


class SignOffStatus(models.TextChoices):
    PENDING = "pending", "pending"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    WITHDRAWN = "withdrawn", "withdrawn"


class SignOff(models.Model):
    """A request that a finished run be signed off, and its outcome under the suite's policy."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="signoffs")
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="signoffs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    approvals_required = models.PositiveIntegerField(
        default=1, help_text="The suite's policy when requested."
    )
    status = models.CharField(max_length=10, choices=SignOffStatus.choices, default=SignOffStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_signoff", "Can approve or reject a sign-off")]
        constraints = [
            models.UniqueConstraint(
                fields=["run"],
                condition=Q(status__in=["pending", "approved"]),
                name="signoff_one_open_per_run",
            ),
            models.CheckConstraint(condition=Q(approvals_required__gte=1), name="signoff_approvals_positive"),
        ]

    def __str__(self) -> str:
        return f"Sign-off of run {self.run_id}: {self.status}"


class Approval(models.Model):
    """An approver's decision on a sign-off. Re-scoring the run voids it (`voided_at`)."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "approve"
        REJECT = "reject", "reject"

    signoff = models.ForeignKey(SignOff, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    voided_at = models.DateTimeField(null=True, blank=True, help_text="Set when the run was re-scored.")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["signoff", "approver"],
                condition=Q(voided_at__isnull=True),
                name="approval_one_live_per_approver",
            )
        ]

    def __str__(self) -> str:
        return f"{self.decision} on sign-off {self.signoff_id}"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("the audit log is append-only: events are never updated")

    def delete(self):
        raise TypeError("the audit log is append-only: events are never deleted")


class AuditEvent(models.Model):
    """One change to what a team relies on. Append-only; each row's `hash` chains to the previous one.

    No foreign keys on purpose: a cascade or SET_NULL would rewrite a row and break the chain, and the
    log must outlive the users, suites and runs it names."""

    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, help_text="The username then, or 'system'.")
    action = models.CharField(max_length=60, help_text="e.g. suite.upload, run.create, signoff.approve")
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=40, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    suite_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["suite_id", "seq"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("the audit log is append-only: events are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("the audit log is append-only: events are never deleted")


class AuditHead(models.Model):
    """The chain's head: one row, updated first by every append, so appends are serialised."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


# --- synthetic examples (docs/finetuning.md, "Synthetic examples") ---------------------------------


class SyntheticStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Generating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class CandidateStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    DROPPED = "dropped", "Dropped (near-duplicate)"


class DropReason(models.TextChoices):
    DUPLICATE = "duplicate", "Near-duplicate of a seed, a train case or an earlier candidate"
    TEST_COPY = "test-copy", "Copy of a test case"


class SyntheticGeneration(models.Model):
    """New train examples written by a model from k seed train cases with a few-shot prompt (a
    `synthesize` strategy version); near-duplicates and copies of test cases are dropped and counted,
    the rest are reviewed, and the accepted ones become train cases of a new suite version."""

    suite_version = models.ForeignKey(
        SuiteVersion, on_delete=models.PROTECT, related_name="synthetic_generations"
    )
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="+")
    strategy = models.ForeignKey(
        Strategy,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The generation prompt (kind synthesize).",
    )
    seed_keys = models.JSONField(default=list, help_text="The keys of the seed train cases, in order.")
    requested = models.PositiveIntegerField(help_text="N: the candidates asked for.")
    threshold = models.FloatField(
        default=0.92, help_text="Cosine similarity above which a candidate is a near-duplicate."
    )
    status = models.CharField(max_length=10, choices=SyntheticStatus.choices, default=SyntheticStatus.QUEUED)
    calls = models.PositiveIntegerField(default=0)
    generated = models.PositiveIntegerField(default=0, help_text="Pairs parsed from the answers.")
    dropped_duplicates = models.PositiveIntegerField(default=0)
    dropped_test_copies = models.PositiveIntegerField(default=0)
    unparseable = models.PositiveIntegerField(default=0, help_text="Answer lines that were not a pair.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.FloatField(
        null=True, blank=True,
        help_text="USD the generation cost (tokens x the endpoint's prices, or the local compute); part "
        "of the training cost of a fine-tune on the version it was promoted into.",
    )  # fmt: skip
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by the worker generating it; stale once the worker is gone."
    )
    promoted_version = models.ForeignKey(
        SuiteVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="synthetic_sources",
        help_text="The suite version its accepted candidates became train cases of.",
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gt=0) & Q(threshold__lte=1), name="synthetic_threshold_range"
            ),
            models.CheckConstraint(condition=Q(requested__gte=1), name="synthetic_requested_positive"),
        ]

    def __str__(self) -> str:
        return f"Synthetic generation #{self.pk} of {self.suite_version}"

    @property
    def is_finished(self) -> bool:
        return self.status in (SyntheticStatus.SUCCEEDED, SyntheticStatus.FAILED, SyntheticStatus.CANCELLED)


class SyntheticCandidate(models.Model):
    """One generated input/expected pair: dropped (with the reason), or pending review, accepted or
    rejected. An accepted one becomes a train case when its generation is promoted (never a test case)."""

    generation = models.ForeignKey(SyntheticGeneration, on_delete=models.CASCADE, related_name="candidates")
    position = models.PositiveIntegerField()
    input = models.JSONField(help_text="A string, or a list of chat messages {role, content}.")
    expected = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=CandidateStatus.choices, default=CandidateStatus.PENDING)
    drop_reason = models.CharField(max_length=10, choices=DropReason.choices, blank=True)
    nearest_similarity = models.FloatField(
        null=True, blank=True, help_text="The highest cosine similarity to a seed, case or earlier candidate."
    )
    nearest = models.CharField(
        max_length=220, blank=True, help_text="What it is nearest: test:key, train:key, #n."
    )
    edited = models.BooleanField(default=False)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    case_key = models.CharField(max_length=200, blank=True, help_text="The train case it became.")

    class Meta:
        ordering = ["generation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "position"], name="syntheticcandidate_unique_position"
            ),
            models.CheckConstraint(
                condition=Q(status="dropped") | Q(drop_reason=""),
                name="syntheticcandidate_reason_only_dropped",
            ),
        ]
        indexes = [models.Index(fields=["generation", "status"])]

    def __str__(self) -> str:
        return f"candidate {self.position} of generation #{self.generation_id}"


class CaptureToken(models.Model):
    """An application's key to the capture proxy (docs/capture.md): it may call the endpoints it is
    scoped to, through ftvp, which forwards with the endpoint's own key and records the call. Only the
    token's SHA-256 is stored; the token is shown once, at creation."""

    name = models.CharField(max_length=100, help_text="The application, e.g. 'support-bot'.")
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    endpoints = models.ManyToManyField(Endpoint, related_name="capture_tokens", help_text="What it may call.")
    rate_per_minute = models.PositiveIntegerField(
        default=600, help_text="Calls a minute it may make (per proxy process); 0: no limit."
    )
    tags = models.JSONField(default=list, blank=True, help_text="Tags every call it makes is recorded with.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class TrafficKind(models.TextChoices):
    CHAT = "chat", "chat/completions"
    EMBEDDINGS = "embeddings", "embeddings"


class TrafficCall(models.Model):
    """One call captured by the proxy: what was asked, what came back, its tokens, latency, cost and
    tags, redacted before it is stored (the spool drain writes it; `call_id` makes that idempotent)."""

    call_id = models.CharField(max_length=40, unique=True, help_text="The proxy's id of the call.")
    token = models.ForeignKey(
        CaptureToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    application = models.CharField(max_length=100, blank=True, help_text="The token's name when called.")
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    endpoint_name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=10, choices=TrafficKind.choices, default=TrafficKind.CHAT)
    model = models.CharField(max_length=200, blank=True, help_text="The model the request named.")
    stream = models.BooleanField(default=False)
    request = models.JSONField(default=dict, blank=True, help_text="The request body, redacted.")
    response = models.JSONField(
        default=dict, blank=True, help_text="The response (a stream: assembled), redacted."
    )
    status = models.PositiveSmallIntegerField(default=200, help_text="The HTTP status returned.")
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True, help_text="From the request to the last byte.")
    cost = models.FloatField(null=True, blank=True, help_text="USD at the endpoint's prices when called.")
    tags = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "started_at"], name="traffic_by_endpoint_time")]

    def __str__(self) -> str:
        return f"{self.kind} call {self.call_id} to {self.endpoint_name}"


class ShadowCompare(models.TextChoices):
    ASSERTIONS = "assertions", "The suite's assertions, the live answer as the expected one"
    PAIRWISE = "pairwise", "The pairwise judge"


class ShadowConfig(models.Model):
    """Shadow evaluation: a sampled share of the live calls to an endpoint is sent again, in the
    background, to a candidate endpoint; each pair is compared (docs/capture.md). The live response
    is never delayed nor changed."""

    name = models.CharField(max_length=100, unique=True)
    live_endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="shadowed_by")
    candidate = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="shadows")
    strategy = models.ForeignKey(
        Strategy, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="How the candidate is prompted; empty: the live request's messages as they are.",
    )  # fmt: skip
    share = models.FloatField(default=0.1, help_text="The share of live calls mirrored, 0 to 1.")
    compare = models.CharField(max_length=10, choices=ShadowCompare.choices, default=ShadowCompare.ASSERTIONS)
    suite = models.ForeignKey(
        Suite, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Whose assertions and pass threshold compare the pairs (default: similarity).",
    )  # fmt: skip
    enabled = models.BooleanField(default=True)
    watermark = models.PositiveBigIntegerField(
        default=0, help_text="The last traffic call (id) the sweep looked at: each call is looked at once."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(share__gte=0) & Q(share__lte=1), name="shadow_share_0_1")
        ]

    def __str__(self) -> str:
        return self.name


class ShadowPair(models.Model):
    """A live call and the candidate's answer to the same request, compared."""

    config = models.ForeignKey(ShadowConfig, on_delete=models.CASCADE, related_name="pairs")
    call = models.ForeignKey(TrafficCall, on_delete=models.CASCADE, related_name="shadow_pairs")
    output = models.TextField(blank=True, help_text="The candidate's answer, redacted.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    agreement = models.FloatField(
        null=True, blank=True, help_text="0..1: how well it agrees with the live answer."
    )
    agreed = models.BooleanField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["config", "call"], name="shadow_pair_once")]

    def __str__(self) -> str:
        return f"{self.config} on call {self.call_id}"
