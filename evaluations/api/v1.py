"""API v1's routes, and nothing else: the resources are the viewsets of `viewsets.py`, the decision
on a suite is `decision.py`, a suite's knowledge documents `knowledge.py`, a run's reviews `reviews.py`."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from evaluations.api import viewsets
from evaluations.api.decision import SuiteDecisionView
from evaluations.api.knowledge import SuiteKnowledgeView
from evaluations.api.reviews import RunAcceptPassingView, RunReviewsView
from evaluations.api.shadow import ShadowDetailView, ShadowEnableView, ShadowListView
from evaluations.api.synthetic import SuiteSyntheticView, SyntheticViewSet
from evaluations.api.traffic import (
    CapturedAnswersApplyView,
    CaptureTokenViewSet,
    TrafficSummaryView,
    TrafficToSuiteView,
    TrafficViewSet,
)

app_name = "api-v1"

router = SimpleRouter(trailing_slash=True, use_regex_path=False)
router.register("suites", viewsets.SuiteViewSet, basename="suite")
router.register("endpoints", viewsets.EndpointViewSet, basename="endpoint")
router.register("strategies", viewsets.StrategyViewSet, basename="strategy")
router.register("runs", viewsets.RunViewSet, basename="run")
router.register("findings", viewsets.FindingViewSet, basename="finding")
router.register("schedules", viewsets.ScheduleViewSet, basename="schedule")
router.register("finetunes", viewsets.FineTuneViewSet, basename="finetune")
router.register("synthetic", SyntheticViewSet, basename="synthetic")
router.register("capture-tokens", CaptureTokenViewSet, basename="capture-token")
router.register("traffic", TrafficViewSet, basename="traffic")

urlpatterns = [
    path("traffic/summary/", TrafficSummaryView.as_view(), name="traffic-summary"),
    path("traffic/to-suite/", TrafficToSuiteView.as_view(), name="traffic-to-suite"),
    path("traffic/apply-reviews/", CapturedAnswersApplyView.as_view(), name="traffic-apply-reviews"),
    path("suites/<int:id>/decision", SuiteDecisionView.as_view(), name="suite-decision"),
    path("suites/<int:id>/knowledge/", SuiteKnowledgeView.as_view(), name="suite-knowledge"),
    path("suites/<int:id>/synthetic/", SuiteSyntheticView.as_view(), name="suite-synthetic"),
    path("runs/<int:id>/reviews/", RunReviewsView.as_view(), name="run-reviews"),
    path("shadows/", ShadowListView.as_view(), name="shadow-list"),
    path("shadows/<int:id>/", ShadowDetailView.as_view(), name="shadow-detail"),
    path("shadows/<int:id>/enabled/", ShadowEnableView.as_view(), name="shadow-enabled"),
    path(
        "runs/<int:id>/reviews/accept-passing/",
        RunAcceptPassingView.as_view(),
        name="run-reviews-accept-passing",
    ),
    *router.urls,
]
