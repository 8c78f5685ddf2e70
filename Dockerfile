# One image for every HyperSentry process of the split topology (docker-compose.yml picks the command per service).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# var/beat holds Celery beat's schedule: compose mounts the `beat-schedule` volume there, and a new named volume
# takes this directory's owner, so beat (not root) can write it.
RUN useradd --create-home --uid 10001 hypersentry \
    && mkdir -p /app/var/beat /app/staticfiles \
    && python manage.py collectstatic --noinput -v0 \
    && chown -R hypersentry:hypersentry /app/var /app/staticfiles
USER hypersentry

EXPOSE 8000 3001
# The web server, as the compose file's `web` service runs it (through sh so --ws-max-size follows
# WS_MAX_FRAME_BYTES: larger frames are refused with close 1009 without being buffered).
CMD ["sh", "-c", "exec uvicorn hypersentry.asgi:application --host 0.0.0.0 --port 8000 --no-proxy-headers --no-access-log --ws-per-message-deflate false --ws-max-size \"${WS_MAX_FRAME_BYTES:-4096}\" --ws-ping-interval 20 --ws-ping-timeout 20 --timeout-graceful-shutdown 5"]
