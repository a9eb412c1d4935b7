# Node and npm for the web assets stage, where node:20-slim cannot be pulled.
ARG DEBIAN_IMAGE=tinychat/debian-base:local
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
    && npm config set --global cafile /etc/ssl/certs/ca-certificates.crt
CMD ["node"]
