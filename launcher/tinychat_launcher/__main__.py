"""`python -m tinychat_launcher`: every TinyChat service in the foreground (what `make run` runs)."""

from .stack import main

if __name__ == "__main__":
    main()
