"""Where LLM-written code runs: a sandbox per RLM job, chosen by RLM_SANDBOX.

make_sandbox_factory(settings) -> SandboxFactory   (process | docker | pool)
factory.create(context) -> Sandbox                 a ready REPL holding `context`
sandbox.execute(code, llm_query=…, timeout=…)      -> CellResult
sandbox.kill()                                     stops it and everything in it
"""

from __future__ import annotations

from .base import CellResult, LlmQuery, Sandbox, SandboxError, SandboxFactory
from .config import SandboxSettings

__all__ = [
    "CellResult",
    "LlmQuery",
    "Sandbox",
    "SandboxError",
    "SandboxFactory",
    "SandboxSettings",
    "make_sandbox_factory",
]


def make_sandbox_factory(settings: SandboxSettings, *, owner: str | None = None) -> SandboxFactory:
    """The backend RLM_SANDBOX names, configured from the settings. `owner` labels docker
    sandboxes so a restarted replica removes only its own leftovers (default: hostname)."""
    if settings.rlm_sandbox == "docker":
        from .docker import DockerSandboxFactory  # the docker SDK is needed only here

        return DockerSandboxFactory(
            image=settings.rlm_sandbox_image,
            memory=settings.rlm_sandbox_memory,
            cpus=settings.rlm_sandbox_cpus,
            pids=settings.rlm_sandbox_pids,
            output_limit=settings.rlm_output_limit,
            owner=owner,
            runtime=settings.rlm_sandbox_runtime,
        )
    if settings.rlm_sandbox == "pool":
        from .pool import PoolSandboxFactory

        return PoolSandboxFactory(
            endpoints=settings.rlm_sandbox_pool,
            wait=settings.rlm_sandbox_pool_wait,
            memory_bytes=settings.sandbox_memory_bytes,
            output_limit=settings.rlm_output_limit,
        )
    from .process import ProcessSandboxFactory

    return ProcessSandboxFactory(
        memory_bytes=settings.sandbox_memory_bytes,
        processes=settings.rlm_sandbox_pids,
        output_limit=settings.rlm_output_limit,
    )
