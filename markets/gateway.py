"""The /ws gateway consumer. Frame validation only at this stage: market fan-out arrives with ingest."""

from __future__ import annotations

from typing import Any

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer

from hypersentry.contracts import channels as ch
from hypersentry.contracts.envelope import dumps_text

MAX_FRAME_BYTES = 4096


class GatewayConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw) > MAX_FRAME_BYTES:
            await self._error("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
            return
        try:
            frame: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self._error("invalid_json", "frame is not valid JSON")
            return
        if not isinstance(frame, dict):
            await self._error("invalid_frame", "frame must be a JSON object")
            return
        kind = frame.get("type")
        if kind == ch.CLIENT_PING:
            await self.send(text_data=dumps_text({"type": "pong"}))
        elif kind not in ch.CLIENT_FRAME_TYPES:
            await self._error("unknown_type", f"unknown frame type {kind!r}")
        else:
            await self._error("unavailable", "market streams are not running in this build")

    async def _error(self, code: str, message: str) -> None:
        await self.send(text_data=dumps_text({"type": "error", "code": code, "message": message}))
