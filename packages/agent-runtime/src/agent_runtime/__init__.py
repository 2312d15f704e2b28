"""Agent runtime container Lambda."""
