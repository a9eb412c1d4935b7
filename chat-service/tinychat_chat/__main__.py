"""`python -m tinychat_chat`: read the settings, serve until SIGTERM/SIGINT."""

from tinychat_common.service import run_service
from tinychat_common.settings import load_settings

from .app import create_app
from .config import ChatSettings


def main() -> None:
    run_service(create_app, load_settings(ChatSettings), "chat-service")


if __name__ == "__main__":
    main()
