from __future__ import annotations

import json
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evaluations.models import AlertDelivery, Endpoint, Run, RunStatus, Strategy, Suite, Trigger
from evaluations.selectors.runs import run_arms_with_summaries, run_progress
from evaluations.services.findings import run_regressions
from evaluations.services.runs import RunError, run_create

# A run no worker has started after this long is reported (and, on embedded defaults, given a worker
# of this command's own): a live, idle worker starts it within a second.
PICKUP_SECONDS = 5.0
# A worker this command starts that keeps exiting is a broken environment, not bad luck.
MAX_WORKER_STARTS = 5
START_HINT = "celery -A workers worker -Q llm,scoring"

ARM_FIELDS = (
    "cases", "mean_score", "score_ci", "pass_rate", "accuracy", "macro_f1", "errors", "cost_total",
    "cost_per_request", "monthly_cost", "prompt_tokens_mean", "completion_tokens_mean", "latency_p50_ms",
    "latency_p95_ms",
)  # fmt: skip


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def parse_arm(spec: str) -> tuple[Endpoint, Strategy]:
    endpoint_name, sep, strategy_name = spec.rpartition(":")
    if not sep or not endpoint_name or not strategy_name:
        raise fail(f"--arm {spec!r}: write ENDPOINT:STRATEGY, e.g. local:few-shot")
    endpoint = Endpoint.objects.filter(name=endpoint_name).first()
    if endpoint is None:
        known = (
            ", ".join(Endpoint.objects.values_list("name", flat=True)) or "none; add one with add_endpoint"
        )
        raise fail(f"--arm {spec!r}: no endpoint named {endpoint_name!r} (known: {known})")
    name, _, version = strategy_name.partition("@v")
    strategies = Strategy.objects.filter(name=name)
    strategy = strategies.filter(version=int(version)).first() if version.isdigit() else strategies.first()
    if strategy is None:
        known = ", ".join(sorted(set(Strategy.objects.values_list("name", flat=True))))
        raise fail(f"--arm {spec!r}: no strategy named {strategy_name!r} (known: {known})")
    return endpoint, strategy


class Command(BaseCommand):
    help = (
        "Run a suite against one or more arms (ENDPOINT:STRATEGY). With --wait, block until the run ends; "
        "on embedded defaults a worker process is started for the duration whenever none is running."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, help="suite name")
        parser.add_argument("--suite-version", type=int, default=None, help="suite version (default: latest)")
        parser.add_argument(
            "--arm", action="append", required=True, help="ENDPOINT:STRATEGY; repeat for more"
        )
        parser.add_argument("--repeats", type=int, default=1, help="samples per case and arm")
        parser.add_argument(
            "--split",
            choices=("test", "train"),
            default="test",
            help="test (default): evaluate. train: a labelling run, the arms answering the train cases "
            "(a teacher's answers to review, then to distil with `finetune --source run:RUN:ARM`)",
        )
        parser.add_argument("--trigger", choices=Trigger.values, default=Trigger.MANUAL)
        parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait with --wait")
        parser.add_argument(
            "--worker-grace",
            type=float,
            default=60.0,
            help="with --wait and Redis: seconds to wait while no worker runs, then exit 2",
        )
        parser.add_argument(
            "--no-cache",
            action="store_true",
            help="call the model for every case even at temperature 0 (see whether it changed)",
        )
        parser.add_argument(
            "--fail-on-regression",
            action="store_true",
            help="with --wait: exit 1 when an arm regressed against the suite's baseline run",
        )
        parser.add_argument(
            "--min-pass-rate",
            type=float,
            default=None,
            help="with --wait: exit 1 when an arm's pass rate is below",
        )

    def handle(self, *args, **opts):
        suite = Suite.objects.filter(name=opts["suite"]).first()
        if suite is None:
            raise fail(f"--suite {opts['suite']!r}: no such suite (import one with import_suite)")
        versions = suite.versions.all()
        version = (
            versions.filter(number=opts["suite_version"]).first()
            if opts["suite_version"]
            else versions.first()
        )
        if version is None:
            known = ", ".join(str(n) for n in versions.values_list("number", flat=True)) or "none"
            raise fail(f"suite {suite.name!r} has no version {opts['suite_version']} (versions: {known})")
        arms = [parse_arm(spec) for spec in opts["arm"]]
        try:
            run = run_create(
                suite_version=version,
                arms=arms,
                repeats=opts["repeats"],
                trigger=opts["trigger"],
                use_cache=not opts["no_cache"],
                split=opts["split"],
            )
        except RunError as exc:
            raise fail(str(exc)) from None
        self.stderr.write(
            f"run #{run.pk} queued: {version}, {len(arms)} arm(s), {run.expected_results} results"
        )
        if opts["split"] == "train" and opts["fail_on_regression"]:
            raise fail("--fail-on-regression compares test runs with the baseline; a labelling run has none")
        if (opts["fail_on_regression"] or opts["min_pass_rate"] is not None) and not opts["wait"]:
            raise fail("--fail-on-regression and --min-pass-rate need --wait")
        if opts["wait"]:
            self._worker_grace = opts["worker_grace"]
            run = self._wait(run, timeout=opts["timeout"])
        regressions = run_regressions(run) if opts["wait"] else []
        self._report(run, as_json=opts["json"], regressions=regressions)
        if opts["wait"] and run.status != RunStatus.SUCCEEDED:
            raise fail(f"run #{run.pk} ended {run.status}{': ' + run.error if run.error else ''}")
        if opts["wait"] and run.analysis_error:
            self.stderr.write(f"run #{run.pk}: part of its analysis failed: {run.analysis_error}")
            if opts["fail_on_regression"] and "baseline comparison" in run.analysis_error:
                raise fail(f"run #{run.pk} could not be compared with the baseline; see the worker log")
        problems = []
        baseline = run.suite_version.suite.baseline_run_id
        if opts["fail_on_regression"] and (baseline is None or baseline == run.pk):
            self.stderr.write(
                f"suite {run.suite_version.suite.name!r} has no baseline run to compare with: make a "
                "finished run the baseline (its page, or the API) so later runs can regress against it"
            )
        if opts["fail_on_regression"] and regressions:
            problems += [f.title for f in regressions]
        if opts["min_pass_rate"] is not None:
            for arm, summary in run_arms_with_summaries(run):
                rate = summary.get("pass_rate")
                if rate is None or rate < opts["min_pass_rate"]:
                    shown = "no pass rate" if rate is None else f"pass rate {rate:.1%}"
                    problems.append(f"{arm.label}: {shown}, below {opts['min_pass_rate']:.1%}")
        if problems:
            raise CommandError("; ".join(problems), returncode=1)

    def _wait(self, run: Run, *, timeout: float) -> Run:
        from evaluations.selectors.workers import run_workers_alive

        worker_grace = self._worker_grace

        self._worker = None  # the worker process this command started, if any
        self._worker_starts = 0
        self._worker_log = settings.DATA_DIR / "logs" / "evaluate-worker.log"
        self._told_pickup, self._no_worker_since = False, None
        self._waiting_since = time.monotonic()
        try:
            if not run_workers_alive():
                if settings.EMBEDDED:
                    self._start_worker(run, "no worker running")
                else:
                    self.stderr.write(
                        f"no worker is running to pick up run #{run.pk}; waiting up to "
                        f"{worker_grace:.0f}s for one (start one with: {START_HINT})"
                    )
                    self._no_worker_since = time.monotonic()
            run = self._poll(run, timeout=timeout, worker_grace=worker_grace)
            if self._worker is not None:
                self._let_alerts_go(run)
            return run
        except KeyboardInterrupt:
            raise fail(
                f"interrupted; run #{run.pk} resumes when a worker runs "
                "(cancel it on its page if it should not)"
            ) from None
        finally:
            self._stop_worker()

    def _start_worker(self, run: Run, why: str) -> None:
        """Start a worker of this command's own (embedded defaults) and wait until it reports in."""
        from workers import embedded

        if self._worker_starts >= MAX_WORKER_STARTS:
            raise fail(
                f"the workers this command started for run #{run.pk} exited {self._worker_starts} "
                f"times; see {self._worker_log}"
            )
        self._worker_starts += 1
        name = f"evaluate-{run.pk}" + (f"-{self._worker_starts}" if self._worker_starts > 1 else "")
        self.stderr.write(f"{why}: starting one for this command (log: {self._worker_log})")
        self._worker = embedded.start_worker(name=name, log_path=self._worker_log)
        if not embedded.wait_until_ready(self._worker):
            self._stop_worker()
            raise fail(f"the worker did not start; see {self._worker_log}")

    def _stop_worker(self) -> None:
        from workers import embedded

        if self._worker is not None:
            embedded.stop_worker(self._worker)
            self._worker = None

    def _watch(self, run: Run, *, worker_grace: float) -> None:
        """Make sure a live worker takes the unfinished run: the one relied on may be gone (killed,
        or stopped with the command that started it, mid-run) or busy. On embedded defaults start
        one of this command's own whenever none takes work; with Redis say how to start one, and
        give up after `worker_grace` seconds without any."""
        from evaluations.selectors.workers import run_workers_alive

        if self._worker is not None and self._worker.poll() is not None:
            self.stderr.write(
                f"the worker this command started exited (code {self._worker.returncode}); "
                f"see {self._worker_log}"
            )
            self._worker = None
        ours = self._worker is not None  # running: it may lag in reporting in, it is not gone
        queued = run.status == RunStatus.QUEUED
        if ours or run_workers_alive():
            self._no_worker_since = None
            waited = time.monotonic() - self._waiting_since
            if ours or not queued or waited < PICKUP_SECONDS or self._told_pickup:
                return
            self._told_pickup = True
            if settings.EMBEDDED:  # the worker relied on is busy, or wedged
                self._start_worker(run, f"no worker has picked up run #{run.pk} after {waited:.0f}s")
            else:
                self.stderr.write(
                    f"no worker has picked up run #{run.pk} after {waited:.0f}s: the running workers "
                    f"are busy or do not consume the llm and scoring queues (start another with: "
                    f"{START_HINT})"
                )
            return
        what = "has picked up" if queued else "is working on"
        if settings.EMBEDDED:
            self._start_worker(run, f"no live worker {what} run #{run.pk} (the one relied on is gone)")
            return
        now = time.monotonic()
        if self._no_worker_since is None:
            self._no_worker_since = now
            self.stderr.write(
                f"no worker {what} run #{run.pk}: none is running (start one with: {START_HINT}); "
                f"giving up in {worker_grace:.0f}s unless one reports in"
            )
        elif now - self._no_worker_since >= worker_grace:
            raise fail(
                f"no worker {what} run #{run.pk}: none has been running for {worker_grace:.0f}s "
                f"(start one with: {START_HINT}); the run resumes when one runs (cancel it on its "
                "page if it should not)"
            )

    def _let_alerts_go(self, run: Run, *, timeout: float = 30.0) -> None:
        """The worker this command started is about to stop: give it a moment to send the run's
        alerts (those still pending are sent by the next worker that runs)."""
        pending = AlertDelivery.objects.filter(finding__run=run, status=AlertDelivery.Status.PENDING)
        deadline = time.monotonic() + timeout
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _poll(self, run: Run, *, timeout: float, worker_grace: float) -> Run:
        deadline = time.monotonic() + timeout
        last, last_step, analysing = None, -1, False
        while True:
            run.refresh_from_db()
            progress = run_progress(run)
            done, total = progress["results_done"], progress["results_total"]
            line = f"run #{run.pk} {run.status}: {done}/{total} results"
            if progress["errors"]:
                line += f", {progress['errors']} errors"
            # On a terminal every change; in a CI log every tenth of the way, and the end.
            step = int(progress["percent"] // 10)
            if line != last and (sys.stderr.isatty() or step != last_step or run.is_finished):
                self.stderr.write(line)
                last_step = step
            last = line
            # A succeeded run is compared with the baseline (and checked for drift) just after.
            if run.is_finished and (run.status != RunStatus.SUCCEEDED or run.analysed_at is not None):
                return run
            if run.is_finished and not analysing:
                self.stderr.write(f"run #{run.pk} succeeded; comparing with the baseline")
                analysing = True
            self._watch(run, worker_grace=worker_grace)
            if time.monotonic() > deadline:
                raise fail(
                    f"run #{run.pk} did not finish within {timeout:.0f}s; it resumes when a worker runs "
                    "(cancel it on its page if it should not)"
                )
            time.sleep(0.5)

    def _report(self, run: Run, *, as_json: bool, regressions=()) -> None:
        arms = [
            {
                "arm_id": arm.pk,
                "endpoint": arm.endpoint.name,
                "strategy": str(arm.strategy),
                **{k: s.get(k) for k in ARM_FIELDS},
                # retrieval strategies: recall@k and MRR against the cases' gold documents
                **({"retrieval": s["retrieval"]} if s.get("retrieval") else {}),
            }
            for arm, s in run_arms_with_summaries(run)
        ]
        if as_json:
            found = [
                {
                    "arm": f.arm.label if f.arm else None,
                    "severity": f.severity,
                    "title": f.title,
                    "details": f.details,
                }
                for f in regressions
            ]
            payload = {
                "run_id": run.pk,
                "status": run.status,
                "suite": run.suite_version.suite.name,
                "suite_version": run.suite_version.number,
                "split": run.split,
                "arms": arms,
                "regressions": found,
            }
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"run #{run.pk} {run.status}")
        for a in arms:
            mean = "—" if a["mean_score"] is None else f"{a['mean_score']:.3f}"
            ci = a["score_ci"] or [None, None]
            ci_text = "" if ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
            passed = "—" if a["pass_rate"] is None else f"{a['pass_rate']:.1%}"
            self.stdout.write(
                f"  {a['endpoint']}:{a['strategy']}  score {mean}{ci_text}  pass {passed}  "
                f"errors {a['errors']}  cost ${a['cost_total'] or 0:.6f}"
            )
        if run.split == "train" and run.status == RunStatus.SUCCEEDED:
            self.stdout.write(
                "  a labelling run: review its answers (the run's review page), then distil one arm "
                f"with `manage.py finetune --source run:{run.pk}:ARM` (ARM: "
                + ", ".join(f"{a['arm_id']} for {a['endpoint']}:{a['strategy']}" for a in arms)
                + ")"
            )
            r = a.get("retrieval") or {}
            if r.get("recall_at_k") is not None:
                self.stdout.write(
                    f"    retrieval: recall@{r['k']} {r['recall_at_k']:.3f}  MRR {r['mrr']:.3f}  "
                    f"on {r['cases_with_gold']} case(s) with gold documents"
                )
        for f in regressions:
            self.stdout.write(f"  REGRESSION ({f.severity}): {f.title}")
