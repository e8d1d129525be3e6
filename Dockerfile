# War Room Checkpoints as a container: `warroom serve` (REST API, scheduler, /docs) with the
# seed's two persistent volumes, /app/checkpoints (workflow checkpoints and the catalog) and
# /app/backups (database backups). Nothing else is written, so a redeploy that keeps the two
# volumes keeps everything: tokens, workflows, backups, deployment history.
#
#   docker build --build-arg PG_MAJOR=16 -t warroom .     # PG_MAJOR: your server's major version
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql://app@db:5432/prod \
#     -v warroom-checkpoints:/app/checkpoints -v warroom-backups:/app/backups warroom
#
# It listens on 0.0.0.0, on $PORT when the platform sets it (Railway does), else on 8000.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim-bookworm
# pg_dump, pg_restore, psql and pg_basebackup must be at least the server's major version.
ARG PG_MAJOR=16
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The PostgreSQL project's repository, set up by the script postgresql-common ships, carries
# every supported major version of the client tools; Debian's own carries one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
    && bash /usr/share/postgresql-common/pgdg/apt.*.sh -y \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/*

COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

RUN groupadd --system --gid 10001 warroom \
    && useradd --system --uid 10001 --gid warroom --home-dir /app --shell /usr/sbin/nologin warroom \
    && install -d -o warroom -g warroom -m 0700 /app/checkpoints /app/backups
WORKDIR /app
ENV CHECKPOINT_DIR=/app/checkpoints \
    BACKUP_DIR=/app/backups \
    CHECKPOINT_RETENTION_DAYS=7 \
    ENABLE_AUTO_CHECKPOINTS=true \
    DATABASE_CHECKPOINT_SCHEDULE="0 3 * * *" \
    WARROOM_HOST=0.0.0.0 \
    WARROOM_PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin \
    PYTHONUNBUFFERED=1
VOLUME ["/app/checkpoints", "/app/backups"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from warroom.config import Settings; port = Settings.load().listen_address()[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=5)"]
CMD ["warroom", "serve"]
