#!/usr/bin/env bash
# Start the Docker engine in the background if it is not running yet, and wait until
# `docker info` answers. Safe to run again and again: a running engine is left alone.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/tinychat-dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
    echo "docker: engine already running"
    exit 0
fi

if ! command -v dockerd >/dev/null; then
    echo "docker: dockerd is not installed (apt-get install -y docker.io docker-compose debootstrap)" >&2
    exit 1
fi

# Another start may be in progress (a pid file whose process lives): only wait for it then.
if ! { [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }; then
    rm -f /var/run/docker.pid
    echo "docker: starting dockerd (log: $LOG)"
    # setsid: the engine outlives this shell and the make target that called it.
    setsid dockerd --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    if engine_answers; then
        echo "docker: engine ready"
        exit 0
    fi
    sleep 1
done
echo "docker: the engine did not answer within ${WAIT_SECONDS}s; last log lines:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
