# syntax=docker/dockerfile:1
# cannonade: one image for the HQ and the agents.
#   docker build -t cannonade:0.1.0 .
#   docker run --rm cannonade:0.1.0 agent --hq HQ_HOST ...
# Keys are never part of the image: mount them at run time (see docs/distributed.md).
# For reproducible builds, pin the base by digest too: python:3.11-slim-bookworm@sha256:...

# Build stage: install cannonade and its dependencies into a virtualenv. Every
# dependency (pyzmq with its bundled libzmq, numpy, uvloop, msgspec, ...) ships binary
# wheels, so no compiler is needed.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/cannonade
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/cannonade/bin/pip install --no-cache-dir .

# Runtime stage: the virtualenv and an unprivileged user, nothing else.
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 cannonade \
    && useradd --system --uid 10001 --gid 10001 --no-log-init \
        --home-dir /home/cannonade --create-home --shell /usr/sbin/nologin cannonade \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/cannonade /opt/cannonade
ENV PATH=/opt/cannonade/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric USER, so Kubernetes' runAsNonRoot can verify it (runAsUser: 10001).
USER 10001:10001
WORKDIR /data
# 5000: HQ commands (PUB), 5001: HQ results (PULL), 8081: the HQ's HTTP API.
EXPOSE 5000 5001 8081
ENTRYPOINT ["cannonade"]
CMD ["--help"]
