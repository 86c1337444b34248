# vcportal: one image for the web server, the Celery worker and Celery beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VCPORTAL_VAR_DIR=/var/lib/vcportal
WORKDIR /app

COPY pyproject.toml ./
COPY . .
RUN pip install . \
 && useradd --system --home-dir /var/lib/vcportal --create-home vcportal \
 && chmod 700 /var/lib/vcportal
# Static files are collected at build time; these throwaway values only let settings load.
RUN DJANGO_SECRET_KEY=build FIELD_ENCRYPTION_KEYS=$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
    python manage.py collectstatic --noinput

USER vcportal
EXPOSE 8000
# One ASGI application: pages, API and the Kubernetes gateway (/kube/). --ws websockets:
# uvicorn's default WebSocket implementation refuses kubectl's port-forward handshake.
CMD ["uvicorn", "portal.asgi:application", "--ws", "websockets", "--host", "0.0.0.0", "--port", "8000", "--workers", "3", "--timeout-keep-alive", "65"]
