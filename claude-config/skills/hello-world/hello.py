"""Example skill script: prints a greeting (run by the agent through the Bash tool)."""

import sys

name = " ".join(sys.argv[1:]).strip() or "world"
print(f"Hello, {name}! (from the hello-world skill)")
