from django.urls import path

from alpha import api, views_pages

urlpatterns: list = [
    path("alpha", views_pages.alpha_page, name="alpha"),
    path("alpha/symbols", api.ConvictionListApi.as_view(), name="alpha-symbols"),
    path("alpha/conviction/<str:symbol>", api.ConvictionGetApi.as_view(), name="alpha-conviction"),
    path("alpha/autonomous/trigger", api.AutonomousTriggerApi.as_view(), name="alpha-trigger"),
    path("alpha/auto-mode", api.AutoModeApi.as_view(), name="alpha-auto-mode"),
]
