"""``python -m hashguard``: the same as the ``hashguard`` command."""

from hashguard.cli import main

if __name__ == "__main__":
    main()
