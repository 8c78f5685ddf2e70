FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 hypersentry \
    && mkdir -p /app/var /app/staticfiles \
    && python manage.py collectstatic --noinput -v0 \
    && chown -R hypersentry:hypersentry /app/var /app/staticfiles
USER hypersentry

EXPOSE 8000
# Through sh so --ws-max-size follows WS_MAX_FRAME_BYTES (frames above it are refused with close 1009 unbuffered).
CMD ["sh", "-c", "exec uvicorn hypersentry.asgi:application --host 0.0.0.0 --port 8000 --proxy-headers --ws-per-message-deflate false --ws-max-size \"${WS_MAX_FRAME_BYTES:-4096}\""]
