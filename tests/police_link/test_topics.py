from __future__ import annotations

import pytest

from police_link import Topics, ValidationError
from police_link.topics import ParsedTopic, TopicKind

T = Topics()


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        (T.site_status("s1"), ParsedTopic(TopicKind.SITE_STATUS, "s1")),
        (T.events("s1"), ParsedTopic(TopicKind.EVENTS, "s1")),
        (T.alarms("s1"), ParsedTopic(TopicKind.ALARMS, "s1")),
        (T.acks("s1"), ParsedTopic(TopicKind.ACKS, "s1")),
        (T.dropped("s1"), ParsedTopic(TopicKind.DROPPED, "s1")),
        (T.stats("s1"), ParsedTopic(TopicKind.STATS, "s1")),
        (T.command("s1", "live.start"), ParsedTopic(TopicKind.COMMAND, "s1", command="live.start")),
        (T.reply("s1", "v-1"), ParsedTopic(TopicKind.REPLY, "s1", client="v-1")),
        (T.camera_status("s1", "gate"), ParsedTopic(TopicKind.CAMERA_STATUS, "s1", camera="gate")),
        (T.snapshot("s1", "gate", "e:1.2"),
         ParsedTopic(TopicKind.SNAPSHOT, "s1", camera="gate", event_id="e:1.2")),
        (T.live("s1", "gate", "sub"),
         ParsedTopic(TopicKind.LIVE, "s1", camera="gate", stream="sub")),
    ],
)
def test_every_topic_parses_back(topic: str, parsed: ParsedTopic) -> None:
    assert T.parse(topic) == parsed


def test_layout_is_the_documented_one() -> None:
    assert T.camera_status("school", "gate") == "dozor/school/gate/status"
    assert T.command("school", "ack") == "dozor/school/cmd/ack"
    assert Topics("org/dozor").events("s") == "org/dozor/s/events"


@pytest.mark.parametrize("name", ["a/b", "+", "#", "", "-x", "a b", "x" * 65])
def test_names_that_would_break_the_tree_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as err:
        T.events(name)
    assert err.value.field == "site"


def test_reserved_camera_names_are_refused() -> None:
    with pytest.raises(ValidationError) as err:
        T.camera_status("s1", "cmd")
    assert err.value.field == "camera"


@pytest.mark.parametrize(
    "topic", ["other/s1/events", "dozor/s1", "dozor/s1/nothing", "dozor/s1/cam/what",
              "dozor/s1/cmd/BAD", "dozor/s1/cam/snapshot/a/b"],
)
def test_unknown_topics_raise_naming_topic(topic: str) -> None:
    with pytest.raises(ValidationError) as err:
        T.parse(topic)
    assert err.value.field == "topic"
