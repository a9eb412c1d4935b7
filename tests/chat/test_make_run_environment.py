"""`make run` gives each service only the settings it reads."""

from __future__ import annotations

from tinychat_launcher.stack import SETTINGS_CLASSES, environment_for, plan


def test_rlm_service_never_holds_the_api_key():
    _, env, _ = plan(
        {"OPENAI_API_URL": "https://llm.example/v1", "OPENAI_API_KEY": "sk-secret", "PATH": "/bin"}
    )
    rlm = environment_for("tinychat_rlm", env)
    assert "OPENAI_API_KEY" not in rlm
    assert rlm["RLM_SANDBOX"] == "process"
    assert rlm["CHAT_SERVICE_URL"] == "http://127.0.0.1:8001"
    assert environment_for("tinychat_chat", env)["OPENAI_API_KEY"] == "sk-secret"


def test_each_service_gets_only_its_own_settings():
    env = {
        "OPENAI_API_KEY": "sk-secret",
        "OPENAI_IMAGE_API_KEY": "img-secret",
        "RLM_PASSCODE": "pass",
        "CHAT_LOG": "/var/log/chat.jsonl",
        "SOMETHING_ELSE": "x",
        "PATH": "/bin",
    }
    gateway = environment_for("tinychat_gateway", env)
    assert set(gateway) == {"RLM_PASSCODE", "PATH"}
    assert "OPENAI_IMAGE_API_KEY" not in environment_for("tinychat_chat", env)
    assert "RLM_PASSCODE" not in environment_for("tinychat_rlm", env)
    for package in SETTINGS_CLASSES:
        assert "SOMETHING_ELSE" not in environment_for(package, env)
