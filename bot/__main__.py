"""`python -m bot` is the same as the `rollbot` command."""

import sys

try:
    from bot.cli import main
except KeyboardInterrupt:  # Ctrl-C while the interpreter loads rollbot: nothing was done yet
    sys.stderr.write("rollbot: interrupted while starting; nothing was done.\n")
    sys.exit(130)

sys.exit(main())
