"""The README's research-log table and the one CHAT_LOG record builder name the same fields,
each for the same services."""

from __future__ import annotations

import re
from pathlib import Path

from tinychat_common.chatlog import COMMON_FIELDS, FIELDS

README = Path(__file__).resolve().parents[2] / "README.md"
ALL_SERVICES = set(FIELDS)


def documented_fields() -> dict[str, set[str]]:
    section = README.read_text().split("## The research log (CHAT_LOG)", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([a-z, ]+) \|", section, flags=re.MULTILINE)
    return {
        field: ALL_SERVICES if services.strip() == "all" else {s.strip() for s in services.split(",")}
        for field, services in rows
    }


def fields_in_code() -> dict[str, set[str]]:
    services: dict[str, set[str]] = {field: set(ALL_SERVICES) for field in COMMON_FIELDS}
    for service, own in FIELDS.items():
        for field in own:
            services.setdefault(field, set()).add(service)
    return services


def test_every_chat_log_field_is_documented_for_the_services_that_write_it() -> None:
    assert documented_fields() == fields_in_code()
