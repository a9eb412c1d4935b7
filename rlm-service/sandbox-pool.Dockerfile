# The sandbox pool's runner image (RLM_SANDBOX=pool): the `sandbox` service of compose and
# Kubernetes. Its command, pool_runner.py, is PID 1 and runs one RLM job at a time for
# rlm-service over TCP (port 8010); the job's code runs in a child process under the
# seccomp job filter, and everything it left is killed and wiped before the next job.
# Standard library only: no pip, no secrets, nothing but Python and three files.
# Build from the repository root:
#   docker build -f rlm-service/sandbox-pool.Dockerfile -t tinychat/sandbox:latest .
# PYTHON_IMAGE may be any image with python3 on PATH (CI passes a locally built one).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
COPY rlm-service/tinychat_rlm/sandbox/runner.py rlm-service/tinychat_rlm/sandbox/pool_runner.py \
     rlm-service/tinychat_rlm/sandbox/seccomp.py /sandbox/
# Compiled now: the running container's root filesystem is read-only.
RUN python3 -m compileall -q /sandbox
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SANDBOX_PORT=8010
# Numeric, so Kubernetes' runAsNonRoot can verify it; shared by no other service.
USER 10002:10002
WORKDIR /tmp
EXPOSE 8010
# Reads /proc/net/tcp for the listening socket: a check never takes a job slot.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=5 \
    CMD ["python3", "-I", "/sandbox/pool_runner.py", "--check"]
ENTRYPOINT ["python3", "-I", "/sandbox/pool_runner.py"]
