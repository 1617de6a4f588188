# The server image: the API (with the dashboard), `bench-server migrate`, the Celery worker and
# beat; docker-compose.yml runs each from it. bench-formats and bench-server are installed from
# this checkout into a virtualenv, as wheels (never editable); the final stage holds that
# virtualenv and no sources.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY formats ./formats
COPY pyproject.toml ./
COPY bench_server ./bench_server
COPY web ./web
# bench_server/migrations is a link to this folder: the wheel carries the Alembic scripts.
COPY migrations ./migrations
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install ./formats .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
# A numeric user (Kubernetes' runAsNonRoot can check it).
RUN groupadd --system --gid 10001 bench \
 && useradd --system --no-log-init --uid 10001 --gid bench --create-home --home-dir /home/bench \
    --shell /usr/sbin/nologin bench
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/bench
EXPOSE 8000
# The API; compose gives the migrate, worker and beat services their own commands.
CMD ["uvicorn", "bench_server.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*"]
