"""agentbot: the operator CLI (`agentbot dev`, `ops`, `doctor`, `release`); the stack `agentbot dev`
runs on is the `local_stack` package."""

__version__ = "0.1.0"
