"""`python -m tinychat_demo`: the built-in demo model on DEMO_PORT (8010)."""

from tinychat_common.service import run_service
from tinychat_common.settings import load_settings

from .app import create_app
from .config import DemoSettings


def main() -> None:
    run_service(create_app, load_settings(DemoSettings), "demo-model")


if __name__ == "__main__":
    main()
