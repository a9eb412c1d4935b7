# Python for building and running the services, where python:3.11-slim cannot be pulled.
ARG DEBIAN_IMAGE=tinychat/debian-base:local
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
CMD ["python3"]
