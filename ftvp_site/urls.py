from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="evaluations/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar's static files (no CDN); its script is a URL too and its
    # styles a static file: nothing inline, for the Content Security Policy.
    path(
        "api/docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(
                url_name="schema", template_name="evaluations/swagger_ui.html"
            )
        ),
        name="api-docs",
    ),
    path("api/v1/", include("evaluations.api.v1")),
    path("api/", include("evaluations.api.urls")),
    path("", include("evaluations.urls")),
]

# A JSON 404 under /api/ (the HTML page elsewhere).
handler404 = "evaluations.api.errors.not_found"
