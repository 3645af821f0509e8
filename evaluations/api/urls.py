from django.urls import path

from evaluations.api import views

app_name = "api"

urlpatterns = [
    path("runs/", views.RunList.as_view(), name="run-list"),
    path("runs/<int:pk>/", views.RunDetail.as_view(), name="run-detail"),
]
