from django.urls import path

from accounts import views

urlpatterns = [
    path("auth/nonce", views.nonce, name="auth-nonce"),
    path("auth/verify", views.verify, name="auth-verify"),
    path("auth/logout", views.logout_view, name="auth-logout"),
    path("auth/session", views.session, name="auth-session"),
    path("auth/sessions", views.session_list, name="auth-sessions"),
    path("auth/sessions/<str:public_id>/revoke", views.session_revoke, name="auth-session-revoke"),
    path("auth/agent/prepare", views.agent_prepare, name="auth-agent-prepare"),
    path("auth/agent/approve", views.agent_approve, name="auth-agent-approve"),
    path("auth/agent/revoke", views.agent_revoke, name="auth-agent-revoke"),
    path("auth/signin", views.signin_page, name="auth-signin"),
]
