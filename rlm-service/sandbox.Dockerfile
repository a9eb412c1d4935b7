# The RLM sandbox image (RLM_SANDBOX_IMAGE): a bare Python that runs the runner and nothing
# else. rlm-service starts one container per RLM job from it, with no network, a read-only
# root, a small tmpfs /tmp, no capabilities and memory/CPU/process limits.
# Build from the repository root:
#   docker build -f rlm-service/sandbox.Dockerfile -t tinychat-sandbox:latest .
# PYTHON_IMAGE may be any image with python3 on PATH (CI passes a locally built one).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
COPY rlm-service/tinychat_rlm/sandbox/runner.py /sandbox/runner.py
USER 65534:65534
WORKDIR /tmp
ENTRYPOINT ["python3", "-I", "-u", "/sandbox/runner.py"]
