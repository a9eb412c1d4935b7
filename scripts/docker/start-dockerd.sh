#!/usr/bin/env bash
# Start the Docker engine in the background if it is not running yet, and wait until
# `docker info` answers. Safe to run again and again: a running engine is left alone.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/tinychat-dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

engine_answers() { docker info >/dev/null 2>&1; }

# gVisor: where runsc is installed, register it as the runtime "runsc" in daemon.json (the
# docker sandbox backend's RLM_SANDBOX_RUNTIME=runsc and its tests use it). A running engine
# reloads its configuration on SIGHUP; its containers are not touched.
DAEMON_JSON=${DOCKERD_CONFIG:-/etc/docker/daemon.json}
register_runsc() {
    local runsc
    runsc=$(command -v runsc) || return 0
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" "$runsc" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
runtimes = config.setdefault("runtimes", {})
# --network=none: sandboxes have no network, and gVisor's own network stack refuses to start
# in this engine's "none" network namespace.
wanted = {"path": runsc, "runtimeArgs": ["--network=none"]}
if runtimes.get("runsc") != wanted:
    runtimes["runsc"] = wanted
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
    os.replace(path + ".tmp", path)
PY
}
runsc_registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

register_runsc
if engine_answers; then
    echo "docker: engine already running"
    if command -v runsc >/dev/null && ! runsc_registered && [ -f /var/run/docker.pid ]; then
        echo "docker: reloading the engine's configuration to add the runsc runtime"
        kill -HUP "$(cat /var/run/docker.pid)"
        for _ in $(seq 1 10); do runsc_registered && break; sleep 1; done
        runsc_registered || echo "docker: runsc could not be registered; see $LOG" >&2
    fi
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
