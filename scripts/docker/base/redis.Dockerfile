# Redis for compose (REDIS_IMAGE) and testcontainers, where redis:7-alpine cannot be pulled.
# It holds only concurrency tokens: no persistence.
ARG DEBIAN_IMAGE=tinychat/debian-base:local
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
