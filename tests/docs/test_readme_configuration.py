"""The README's configuration table and the services' settings describe the same variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings
from tinychat_chat.config import ChatSettings
from tinychat_demo.config import DemoSettings
from tinychat_gateway.config import GatewaySettings
from tinychat_image.config import ImageSettings
from tinychat_rlm.config import RlmSettings

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS: list[type[BaseSettings]] = [
    GatewaySettings,
    ChatSettings,
    ImageSettings,
    RlmSettings,
    DemoSettings,
]


def documented_variables() -> set[str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def read_variables() -> set[str]:
    return {name.upper() for cls in SETTINGS for name in cls.model_fields}


def test_every_variable_a_service_reads_is_in_the_readme() -> None:
    missing = read_variables() - documented_variables()
    assert not missing, f"add to the README's configuration table: {sorted(missing)}"


def test_every_variable_in_the_readme_is_read_by_a_service() -> None:
    unknown = documented_variables() - read_variables()
    assert not unknown, f"the README documents variables no service reads: {sorted(unknown)}"


@pytest.mark.parametrize("variable", ["OPENAI_API_URL", "PORT", "RLM_TIMEOUT", "IMAGE_PROVIDER"])
def test_the_table_is_found(variable: str) -> None:
    assert variable in documented_variables()
