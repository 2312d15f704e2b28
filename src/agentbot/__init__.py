"""agentbot: operator CLI, provisioning and the local stack behind `agentbot dev`."""

__version__ = "0.1.0"
