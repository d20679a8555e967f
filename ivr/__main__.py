"""``python -m ivr``: the same as the ``ivr`` command."""

from ivr.cli import main

if __name__ == "__main__":  # not when a spawned child process imports it
    main()
