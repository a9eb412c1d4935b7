#!/usr/bin/env bash
# `make e2e`: the compose stack, built from local base images, tested end to end.
#
#  1. start dockerd and build the local base images (no registry pulls needed);
#  2. build every image with PYTHON_IMAGE / NODE_IMAGE / REDIS_IMAGE set to the local bases;
#  3. phase "default": `docker-compose up -d` with no configuration → tests/e2e/test_default_stack.py
#     (demo model, only the gateway published, non-root read-only containers);
#  4. phase "full": the same stack pointed at the fake LLM and fake SwarmUI containers, RLM in
#     the sandbox pool (two runners) with Redis tokens and a passcode →
#     tests/e2e/test_full_stack.py, and the sandbox attacks → tests/e2e/test_sandbox_pool.py;
#  5. tear everything down, whatever happened (trap), printing the logs on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tinychat-e2e}
export PYTHON_IMAGE=${PYTHON_IMAGE:-tinychat/python-base:local}
export NODE_IMAGE=${NODE_IMAGE:-tinychat/node-base:local}
export REDIS_IMAGE=${REDIS_IMAGE:-tinychat/redis:local}
export TINYCHAT_TAG=${TINYCHAT_TAG:-e2e}
export RLM_SANDBOX_IMAGE=${RLM_SANDBOX_IMAGE:-tinychat-sandbox:e2e}
export PORT=${E2E_PORT:-8000}
export BIND_ADDRESS=127.0.0.1
export E2E_BASE_URL="http://localhost:$PORT"
HEALTH_TIMEOUT=${E2E_HEALTH_TIMEOUT:-180}

compose() { docker-compose -f compose.yaml -f tests/e2e/compose.e2e.yaml "$@"; }
log() { printf '\n--> e2e: %s\n' "$*"; }

# Keep the user's own settings (a .env, the shell) out of the test run: each phase sets
# exactly what it means to test.
unset OPENAI_API_URL OPENAI_API_KEY DEFAULT_MODEL AVAILABLE_MODELS IMAGE_PROVIDER SWARMUI \
    RLM_SANDBOX RLM_PASSCODE MAX_CONCURRENT_RLM REDIS_URL CHAT_LOG RATE_LIMIT_RLM RLM_SANDBOX_RUNNERS \
    AUTH_MODE AUTH_PASSWORD AUTH_SECRET INTERNAL_TOKEN REDIS_PASSWORD
if [ -f .env ]; then
    echo "e2e: ignoring ./.env (the test run sets its own configuration)"
fi
ENV_FILE=$(mktemp)  # an empty env file, passed instead of ./.env

teardown() {
    local status=$1
    if [ "$status" != 0 ]; then
        log "failed; the last log lines of every service:"
        compose --env-file "$ENV_FILE" logs --no-color --tail=60 || true
    fi
    log "tearing the stack down"
    compose --env-file "$ENV_FILE" down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
    # Sandboxes the test run's rlm-service may have left behind if it was killed mid-job.
    leftovers=$(docker ps -aq --filter label=tinychat.sandbox=1 --filter "ancestor=$RLM_SANDBOX_IMAGE" || true)
    [ -z "$leftovers" ] || docker rm -f $leftovers >/dev/null 2>&1 || true
    rm -f "$ENV_FILE"
}
trap 'status=$?; teardown "$status"; exit "$status"' EXIT
trap 'exit 130' INT TERM

wait_until_healthy() {
    log "waiting for every service to be healthy (up to ${HEALTH_TIMEOUT}s)"
    local began=$SECONDS deadline=$((SECONDS + HEALTH_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if "$PY" - "$E2E_BASE_URL" <<'PYEOF'
import json, os, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
try:
    password = os.environ.get("E2E_AUTH_PASSWORD")
    if password:  # AUTH_MODE=password: log in first, the cookie goes with /api/health
        login = urllib.request.Request(sys.argv[1] + "/api/auth/login", method="POST",
            data=json.dumps({"password": password}).encode(), headers={"Content-Type": "application/json"})
        opener.open(login, timeout=3).close()
    with opener.open(sys.argv[1] + "/api/health", timeout=3) as answer:
        health = json.load(answer)
except OSError:
    sys.exit(1)
sys.exit(0 if health.get("status") == "ok" else 1)
PYEOF
        then
            log "healthy after $((SECONDS - began))s"
            return 0
        fi
        sleep 2
    done
    echo "e2e: the stack did not become healthy within ${HEALTH_TIMEOUT}s" >&2
    compose --env-file "$ENV_FILE" ps >&2 || true
    "$PY" -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1] + '/api/health', timeout=3).read().decode())" \
        "$E2E_BASE_URL" >&2 || true
    return 1
}

run_tests() {
    "$PY" -m pytest -q -m e2e --timeout 180 "$@"
}

log "docker engine and local base images"
bash scripts/docker/start-dockerd.sh
bash scripts/docker/build-base-images.sh
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
export DOCKER_GID

log "building the images (PYTHON_IMAGE=$PYTHON_IMAGE NODE_IMAGE=$NODE_IMAGE)"
compose --env-file "$ENV_FILE" build

log "phase default: no configuration, the demo model answers"
compose --env-file "$ENV_FILE" up -d
wait_until_healthy
run_tests tests/e2e/test_default_stack.py

log "phase full: fake LLM + fake SwarmUI, RLM in the sandbox pool (2 runners) with Redis tokens"
export OPENAI_API_URL=http://fake-llm:9000/v1 DEFAULT_MODEL=e2e-model AVAILABLE_MODELS=auto
export IMAGE_PROVIDER=swarmui SWARMUI=http://fake-swarmui:7801
export RLM_SANDBOX=pool RLM_PASSCODE=${E2E_RLM_PASSCODE:-e2e-passcode} MAX_CONCURRENT_RLM=1
# The sandbox attacks make a few dozen RLM requests in a minute from one client.
export RATE_LIMIT_RLM=120
# As an exposed stack runs: password login; internal tokens and the Redis password are the
# ones secrets-init generated at the first start.
export AUTH_MODE=password AUTH_PASSWORD=${E2E_AUTH_PASSWORD:-e2e login password}
export E2E_AUTH_PASSWORD=$AUTH_PASSWORD
compose --env-file "$ENV_FILE" up -d --scale sandbox=2
wait_until_healthy
E2E_RLM_PASSCODE=$RLM_PASSCODE run_tests tests/e2e/test_sandbox_pool.py tests/e2e/test_full_stack.py \
    tests/e2e/test_access_stack.py

log "image sizes"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E ":$TINYCHAT_TAG\b" | sort
