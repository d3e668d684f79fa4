"""``python -m sinotriage``: the command line (same as the ``sinotriage`` script)."""

from sinotriage.cli import main

if __name__ == "__main__":
    main()
