from __future__ import annotations

from tinychat_common.service import run_service
from tinychat_common.settings import load_settings

from .app import create_app
from .config import ImageSettings


def main() -> None:
    run_service(create_app, load_settings(ImageSettings), "image-service")


if __name__ == "__main__":
    main()
