"""`python -m tinychat_common.secrets_init DIR`: the secrets a compose stack shares,
generated once on its first start into a volume, so plain `docker compose up` runs with
internal tokens and a Redis password without anyone choosing them.

Each file is created only if missing (a restart keeps the tokens; delete the volume to
rotate them): `internal_token`, `redis_password`, `auth_secret` (signs the login cookie),
and `redis.conf` (the password for redis-server). A value set in the environment
(INTERNAL_TOKEN, REDIS_PASSWORD, AUTH_SECRET) wins over the file in every service.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

TOKEN_BYTES = 32
GENERATED = ("internal_token", "redis_password", "auth_secret")


def write_once(path: Path, text: str) -> bool:
    """Create `path` with `text` unless it exists; True when it was written."""
    try:
        # 0444: the services and Redis run as different non-root users; only containers
        # that mount this volume can see it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def ensure_secrets(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    made = [name for name in GENERATED if write_once(directory / name, secrets.token_urlsafe(TOKEN_BYTES))]
    password = (directory / "redis_password").read_text(encoding="utf-8").strip()
    if write_once(directory / "redis.conf", f"requirepass {password}\n"):
        made.append("redis.conf")
    return made


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "/run/tinychat-secrets")
    made = ensure_secrets(directory)
    print(f"secrets in {directory}: {'generated ' + ', '.join(made) if made else 'kept'}")


if __name__ == "__main__":
    main()
