# CytoSafe web app and REST API for a lab server.
#   docker build -t cytosafe .
#   docker run -p 8000:8000 cytosafe            (embedded SQLite store in a volume)
#   docker compose up                           (with PostgreSQL 15: docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_DATA_HOME=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The SIMULATED example study and cohort, loaded into an empty store on first start.
COPY examples ./examples
RUN pip install . \
    && useradd --create-home --uid 1000 cytosafe \
    && mkdir -p /data \
    && chown cytosafe /data

USER cytosafe
VOLUME ["/data"]
EXPOSE 8000
CMD ["cytosafe", "serve", "--host", "0.0.0.0", "--port", "8000"]
