from django.urls import path

from evaluations.views import alerts as alert_views
from evaluations.views import audit as audit_views
from evaluations.views import decisions, findings, finetune, pages
from evaluations.views import exports as export_views
from evaluations.views import reviews as review_views
from evaluations.views import schedules as schedule_views
from evaluations.views import shadow as shadow_views
from evaluations.views import signoffs as signoff_views
from evaluations.views import strategies as strategy_views
from evaluations.views import synthetic as synthetic_views
from evaluations.views import team as team_views
from evaluations.views import tokens as token_views
from evaluations.views import traffic as traffic_views
from evaluations.views import trends as trends_views

app_name = "evaluations"

urlpatterns = [
    path("", pages.home, name="home"),
    path("suites/", pages.suite_list, name="suite-list"),
    path("suites/upload/", pages.suite_upload, name="suite-upload"),
    path("suites/<int:pk>/", pages.suite_detail, name="suite-detail"),
    path("suites/<int:pk>/settings/", pages.suite_settings, name="suite-settings"),
    path("suites/<int:pk>/knowledge/", pages.suite_knowledge, name="suite-knowledge"),
    path("suites/<int:pk>/decision/", decisions.decision_page, name="suite-decision"),
    path("suites/<int:pk>/decision/profile/", decisions.decision_profile, name="suite-decision-profile"),
    path(
        "suites/<int:pk>/decision/endpoints/<int:endpoint_pk>/",
        decisions.decision_endpoint_costs,
        name="suite-decision-endpoint",
    ),
    path("breakeven/", decisions.breakeven_page, name="breakeven"),
    path(
        "suites/<int:pk>/export/finetune.jsonl", finetune.suite_finetune_export, name="suite-finetune-export"
    ),
    path("shadows/", shadow_views.shadow_list, name="shadow-list"),
    path("shadows/<int:pk>/", shadow_views.shadow_detail, name="shadow-detail"),
    path("shadows/<int:pk>/enabled/", shadow_views.shadow_enable, name="shadow-enable"),
    path("finetunes/", finetune.finetune_list, name="finetune-list"),
    path("finetunes/<int:pk>/", finetune.finetune_detail, name="finetune-detail"),
    path("finetunes/<int:pk>/live/", finetune.finetune_live, name="finetune-live"),
    path("finetunes/<int:pk>/cancel/", finetune.finetune_cancel_view, name="finetune-cancel"),
    path("finetunes/<int:pk>/training.jsonl", finetune.finetune_training_file, name="finetune-training-file"),
    path("endpoints/", pages.endpoint_list, name="endpoint-list"),
    path("strategies/", strategy_views.strategy_list, name="strategy-list"),
    path("strategies/<int:pk>/", strategy_views.strategy_detail, name="strategy-detail"),
    path("runs/", pages.run_list, name="run-list"),
    path("runs/new/", pages.run_new, name="run-new"),
    path("runs/<int:pk>/", pages.run_detail, name="run-detail"),
    path("runs/<int:pk>/live/", pages.run_live, name="run-live"),
    path("runs/<int:pk>/results/", pages.run_results, name="run-results"),
    path("runs/<int:pk>/cancel/", pages.run_cancel_view, name="run-cancel"),
    path("runs/<int:pk>/resume/", pages.run_resume_view, name="run-resume"),
    path("runs/<int:pk>/rescore/", pages.run_rescore_view, name="run-rescore"),
    path("runs/<int:pk>/export.csv", export_views.run_export_csv, name="run-export-csv"),
    path("runs/<int:pk>/export.jsonl", export_views.run_export_jsonl, name="run-export-jsonl"),
    path("runs/<int:pk>/export/finetune.jsonl", export_views.run_export_finetune, name="run-export-finetune"),
    path("compare/", pages.compare_view, name="compare"),
    path("runs/<int:pk>/baseline/", findings.run_set_baseline, name="run-set-baseline"),
    path("findings/", findings.finding_list, name="finding-list"),
    path("findings/<int:pk>/", findings.finding_detail, name="finding-detail"),
    path("suites/<int:pk>/trends/", trends_views.suite_trends_page, name="suite-trends"),
    path("alerts/", alert_views.alert_list, name="alert-list"),
    path("alerts/new/", alert_views.alert_channel_new, name="alert-channel-new"),
    path("alerts/<int:pk>/edit/", alert_views.alert_channel_edit, name="alert-channel-edit"),
    path("alerts/<int:pk>/delete/", alert_views.alert_channel_delete_view, name="alert-channel-delete"),
    path("alerts/<int:pk>/test/", alert_views.alert_channel_test_view, name="alert-channel-test"),
    path("alerts/deliveries/<int:pk>/retry/", alert_views.alert_delivery_retry_view, name="alert-retry"),
    path("team/", team_views.team, name="team"),
    path("team/<int:pk>/roles/", team_views.team_roles, name="team-roles"),
    path("team/<int:pk>/active/", team_views.team_active, name="team-active"),
    path("tokens/", token_views.token_list, name="token-list"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke, name="token-revoke"),
    path("capture-tokens/", traffic_views.capture_token_list, name="capture-token-list"),
    path(
        "capture-tokens/<int:pk>/revoke/",
        traffic_views.capture_token_revoke_view,
        name="capture-token-revoke",
    ),
    path("traffic/", traffic_views.traffic_page, name="traffic"),
    path("traffic/calls/<int:pk>/", traffic_views.traffic_call_detail, name="traffic-call"),
    path("traffic/to-suite/", traffic_views.traffic_to_suite_view, name="traffic-to-suite"),
    path("suites/<int:pk>/schedules/new/", schedule_views.schedule_new, name="schedule-new"),
    path("schedules/<int:pk>/edit/", schedule_views.schedule_edit, name="schedule-edit"),
    path("schedules/<int:pk>/toggle/", schedule_views.schedule_toggle, name="schedule-toggle"),
    path("schedules/<int:pk>/delete/", schedule_views.schedule_delete_view, name="schedule-delete"),
    path("runs/<int:pk>/review/", review_views.review_next, name="run-review"),
    path("runs/<int:pk>/review/summary/", review_views.review_summary, name="run-review-summary"),
    path("runs/<int:pk>/review/threshold/", review_views.review_threshold_apply, name="run-review-threshold"),
    path(
        "runs/<int:pk>/review/apply-captured/",
        review_views.captured_answers_apply_view,
        name="run-captured-apply",
    ),
    path(
        "runs/<int:pk>/review/accept-passing/",
        review_views.review_accept_passing,
        name="run-review-accept-passing",
    ),
    path("runs/<int:pk>/review/<int:result_pk>/", review_views.review_result, name="run-review-result"),
    path("runs/<int:pk>/export/reviewed.jsonl", review_views.run_export_reviewed, name="run-export-reviewed"),
    path("runs/<int:pk>/signoff/", signoff_views.run_signoff_request, name="run-signoff-request"),
    path("runs/<int:pk>/delete/", signoff_views.run_delete_view, name="run-delete"),
    path("signoffs/", signoff_views.signoff_list, name="signoff-list"),
    path("signoffs/<int:pk>/decide/", signoff_views.signoff_decide_view, name="signoff-decide"),
    path("signoffs/<int:pk>/withdraw/", signoff_views.signoff_withdraw_view, name="signoff-withdraw"),
    path("audit/", audit_views.audit_list, name="audit-list"),
    path("suites/<int:pk>/synthetic/", synthetic_views.suite_synthetic, name="suite-synthetic"),
    path("synthetic/prompt/", synthetic_views.synthetic_prompt, name="synthetic-prompt"),
    path("synthetic/<int:pk>/", synthetic_views.synthetic_detail, name="synthetic-detail"),
    path("synthetic/<int:pk>/review/", synthetic_views.synthetic_review, name="synthetic-review"),
    path("synthetic/<int:pk>/accept-all/", synthetic_views.synthetic_accept_all, name="synthetic-accept-all"),
    path("synthetic/<int:pk>/promote/", synthetic_views.synthetic_promote_view, name="synthetic-promote"),
    path("synthetic/<int:pk>/cancel/", synthetic_views.synthetic_cancel_view, name="synthetic-cancel"),
]
