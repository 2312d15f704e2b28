"""What the model's API means by an answer, read alike by the runtime's model proxy and by the
operator's checks of a key (`agentbot doctor`, `agentbot dev`'s start), which must not import
the runtime to know it."""

from __future__ import annotations

# The API refusing the key itself (revoked, mistyped, of another organisation's): no retry
# helps, the operator has to set another.
KEY_REFUSED = frozenset({401, 403})
