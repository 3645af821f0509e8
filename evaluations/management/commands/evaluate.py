from __future__ import annotations

import json
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evaluations import selectors
from evaluations.models import AlertDelivery, Endpoint, Run, RunStatus, Strategy, Suite, Trigger
from evaluations.services.findings import run_regressions
from evaluations.services.runs import RunError, run_create

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
        "on embedded defaults a worker process is started for the duration if none is running."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, help="suite name")
        parser.add_argument("--suite-version", type=int, default=None, help="suite version (default: latest)")
        parser.add_argument(
            "--arm", action="append", required=True, help="ENDPOINT:STRATEGY; repeat for more"
        )
        parser.add_argument("--repeats", type=int, default=1, help="samples per case and arm")
        parser.add_argument("--trigger", choices=Trigger.values, default=Trigger.MANUAL)
        parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait with --wait")
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
            )
        except RunError as exc:
            raise fail(str(exc)) from None
        self.stderr.write(
            f"run #{run.pk} queued: {version}, {len(arms)} arm(s), {run.expected_results} results"
        )
        if (opts["fail_on_regression"] or opts["min_pass_rate"] is not None) and not opts["wait"]:
            raise fail("--fail-on-regression and --min-pass-rate need --wait")
        if opts["wait"]:
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
            for arm, summary in selectors.run_arms_with_summaries(run):
                rate = summary.get("pass_rate")
                if rate is None or rate < opts["min_pass_rate"]:
                    shown = "no pass rate" if rate is None else f"pass rate {rate:.1%}"
                    problems.append(f"{arm.label}: {shown}, below {opts['min_pass_rate']:.1%}")
        if problems:
            raise CommandError("; ".join(problems), returncode=1)

    def _wait(self, run: Run, *, timeout: float) -> Run:
        from workers import embedded

        worker = None
        if embedded.live_worker_count() == 0:
            if settings.EMBEDDED:
                log_path = settings.DATA_DIR / "logs" / "evaluate-worker.log"
                self.stderr.write(f"no worker running: starting one for this command (log: {log_path})")
                worker = embedded.start_worker(name=f"evaluate-{run.pk}", log_path=log_path)
                if not embedded.wait_until_ready(worker):
                    embedded.stop_worker(worker)
                    raise fail(f"the worker did not start; see {log_path}")
            else:
                self.stderr.write(
                    "no worker has reported in yet; waiting for one "
                    "(start one with: celery -A workers worker -Q llm,scoring)"
                )
        try:
            run = self._poll(run, timeout=timeout)
            if worker is not None:
                self._let_alerts_go(run)
            return run
        except KeyboardInterrupt:
            raise fail(
                f"interrupted; run #{run.pk} resumes when a worker runs "
                "(cancel it on its page if it should not)"
            ) from None
        finally:
            if worker is not None:
                embedded.stop_worker(worker)

    def _let_alerts_go(self, run: Run, *, timeout: float = 30.0) -> None:
        """The worker this command started is about to stop: give it a moment to send the run's
        alerts (those still pending are sent by the next worker that runs)."""
        pending = AlertDelivery.objects.filter(finding__run=run, status=AlertDelivery.Status.PENDING)
        deadline = time.monotonic() + timeout
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _poll(self, run: Run, *, timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        last, last_step, analysing = None, -1, False
        while True:
            run.refresh_from_db()
            progress = selectors.run_progress(run)
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
            if time.monotonic() > deadline:
                raise fail(
                    f"run #{run.pk} did not finish within {timeout:.0f}s; it resumes when a worker runs "
                    "(cancel it on its page if it should not)"
                )
            time.sleep(1.0)

    def _report(self, run: Run, *, as_json: bool, regressions=()) -> None:
        arms = [
            {
                "endpoint": arm.endpoint.name,
                "strategy": str(arm.strategy),
                **{k: s.get(k) for k in ARM_FIELDS},
            }
            for arm, s in selectors.run_arms_with_summaries(run)
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
        for f in regressions:
            self.stdout.write(f"  REGRESSION ({f.severity}): {f.title}")
