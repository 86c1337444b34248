# vcportal: one image for the web server (pages, API, gateway), the Celery worker and
# beat, and the migrations. `make images` (tools/images/build.sh) assembles the same
# image offline for the embedded host; keep the two in step (tests/images checks the
# Python version and the installed distributions): same lock, paths, user and environment.
#
#   docker build -t REGISTRY/vcportal:TAG .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app VCPORTAL_VAR_DIR=/var/lib/vcportal
WORKDIR /app

COPY tools/images/requirements.lock /tmp/
RUN pip install --no-deps -r /tmp/requirements.lock \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nonroot \
 && mkdir -p /var/lib/vcportal && chown 65532:65532 /var/lib/vcportal
COPY manage.py ./
COPY templates templates
COPY static static
COPY portal portal
COPY accounts accounts
COPY vclusters vclusters
COPY provisioning provisioning
COPY gitops gitops
COPY gateway gateway
COPY controlplane controlplane
COPY localkube localkube
COPY syncer syncer
# Static files are collected at build time; these throwaway values only let settings load.
# Bytecode now, never checked against its source: the root filesystem may be read-only.
RUN DJANGO_SECRET_KEY=build FIELD_ENCRYPTION_KEYS=$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())') \
    VCPORTAL_VAR_DIR=/tmp/build python manage.py collectstatic --noinput -v 0 \
 && python -m compileall -q --invalidation-mode unchecked-hash /app /usr/local/lib/python3.11

USER 65532:65532
EXPOSE 8000
# One ASGI application: pages, API and the Kubernetes gateway (/kube/). --ws websockets:
# uvicorn's default WebSocket implementation refuses kubectl's port-forward handshake.
CMD ["python3", "-m", "uvicorn", "portal.asgi:application", "--ws", "websockets", "--host", "0.0.0.0", "--port", "8000", "--timeout-keep-alive", "65"]
