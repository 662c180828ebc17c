# syntax=docker/dockerfile:1
FROM python:3.12-slim

LABEL org.opencontainers.image.title="example api" \
      org.opencontainers.image.description="A \"small\" service" \
      maintainer="Team API <api@example.com>"

ENV PYTHONDONTWRITEBYTECODE 1
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends build-essential
rm -rf /var/lib/apt/lists/*
EOF

WORKDIR /app
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt

COPY <<-"CONF" /etc/app/config.ini
	[server]
	port = $PORT
	CONF

RUN python3 <<PY > /app/build-info.txt
import platform
print(platform.python_version())
PY

COPY --link . .
VOLUME ["/app/data"]
STOPSIGNAL SIGINT
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
