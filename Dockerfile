# One image for the api, worker, beat and (with the runner package) a CPU runner.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends git curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app

COPY pyproject.toml alembic.ini ./
COPY bench_server ./bench_server
COPY web ./web
COPY migrations ./migrations
COPY formats ./formats
COPY runners ./runners
RUN pip install ./formats . ./runners

RUN useradd --create-home bench
USER bench
EXPOSE 8000
CMD ["uvicorn", "bench_server.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
