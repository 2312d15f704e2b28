"""A chat that moved to a new id (a group upgraded to a supergroup) goes on with the
conversation its old id held: the real CLI, the scripted model, storage in moto."""

from __future__ import annotations

import json

import pytest
from session_core import SessionKey, SessionRegistry

pytestmark = pytest.mark.slow

OLD, NEW = "default/-4055/0", "default/-1004055/0"


def test_the_moved_chats_first_turn_sees_every_turn_of_the_old_chat(
    make_runtime, model_server, turn_request, fresh_container, aws
) -> None:
    runtime = make_runtime()
    assert runtime.run_turn(turn_request("the bird is a heron", turn_id=1, session_key=OLD)).ok
    assert runtime.run_turn(turn_request("the fish is a carp", turn_id=2, session_key=OLD)).ok
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    assert registry.move_chat(SessionKey.parse(OLD), SessionKey.parse(NEW))

    fresh_container()
    moved = make_runtime().run_turn(turn_request("name both", turn_id=4, session_key=NEW))

    assert moved.ok, moved
    assert moved.text == "turns=3 last=name both"  # the group's last turn is not left out
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "the bird is a heron" in sent and "the fish is a carp" in sent
