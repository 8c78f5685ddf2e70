from django.contrib import admin
from django.urls import include, path
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
    path("", markets_overview, name="home"),
    path("", include("markets.urls")),
    path("", include("accounts.urls")),
    path("", include("execution.urls")),
    path("", include("alpha.urls")),
]
