from django.contrib import admin
from django.contrib.staticfiles.views import serve as static_serve
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from hypersentry import views
from markets.views_pages import markets_overview

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("admin/", admin.site.urls),
    path("system", views.index, name="system"),
    # Static files through the finders in every topology (no build step, no collectstatic needed for `make run`);
    # a fronting proxy may serve STATIC_ROOT instead.
    re_path(r"^static/(?P<path>.*)$", static_serve, {"insecure": True}),
    path("", markets_overview, name="home"),
    path("", include("markets.urls")),
    path("", include("accounts.urls")),
    path("", include("execution.urls")),
    path("", include("alpha.urls")),
]
