"""A chat that moved to a new id (a group upgraded to a supergroup) goes on with the
conversation its old id held: the real CLI, the scripted model, storage in moto."""

from __future__ import annotations

import json

import pytest
from local_stack import last_user_text
from session_core import SessionKey, SessionRegistry, UnsentFile, undelivered_files

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


def test_files_the_group_did_not_deliver_are_told_to_the_supergroup_not_to_a_late_group_turn(
    make_runtime, model_server, turn_request, aws
) -> None:
    """The group's conversation went on in the supergroup: its agent is told. A message of the
    group answered after the move starts a conversation of its own, with no answer the files
    belong to (as after /new)."""
    runtime = make_runtime()
    assert runtime.run_turn(turn_request("zip the logs", turn_id=1, session_key=OLD)).ok
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    noted = undelivered_files(1, [UnsentFile(file_name="logs.zip", reason="too_large")])
    assert noted is not None
    registry.keep_undelivered_files(SessionKey.parse(OLD), noted)
    assert registry.move_chat(SessionKey.parse(OLD), SessionKey.parse(NEW))

    assert runtime.run_turn(turn_request("a late one", turn_id=2, session_key=OLD)).ok
    assert "logs.zip" not in last_user_text(model_server.model_calls[-1].body or {})
    assert runtime.run_turn(turn_request("where is the zip?", turn_id=3, session_key=NEW)).ok
    assert '"logs.zip": larger than' in last_user_text(model_server.model_calls[-1].body or {})
