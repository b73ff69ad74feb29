"""`python -m demo` (what `make demo` runs): the whole Slack conversation on this machine."""

import sys

from demo.conversation import run_demo

sys.exit(run_demo())
