"""Shared OpenAPI pieces: the error body every API answers with, and a loose JSON object for nested maps."""

from __future__ import annotations

from rest_framework import serializers


class ErrorResponse(serializers.Serializer):
    type = serializers.CharField(default="error")
    code = serializers.CharField(help_text="stable machine-readable code")
    message = serializers.CharField()


class JsonObject(serializers.JSONField):
    """A nested object whose keys are data (symbols, reasons...), documented as free-form JSON."""


ERRORS = {400: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse}
