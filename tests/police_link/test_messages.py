from __future__ import annotations

import json
import math

import pytest

from police_link import (
    AckMessage,
    AlarmMessage,
    BrokerSettings,
    CameraStatusMessage,
    DropReport,
    EventMessage,
    SettingsError,
    StatsMessage,
    ValidationError,
)

SAMPLES = [
    EventMessage("s1", "gate", "ev1", "end", 100.0, 104.5, ("road", "yard"), 0.25,
                 "dozor/s1/gate/snapshot/ev1", 7),
    CameraStatusMessage("s1", "gate", "recording", 100.0, "", 8),
    AlarmMessage("s1", "disk_full", True, 100.0, None, "2% free", 9),
    AckMessage("s1", "ev1", "Petrenko", 101.0, "desk", "checked", "gate", 10),
    DropReport("s1", 90.0, 95.0, {"snapshot": 3, "event": 1}, 123456, ((4, 6), (9, 9)), 11),
    StatsMessage("s1", 100.0, 3600.0, 10**12, 10**11, 5 * 10**9, 2, 2048,
                 {"cpu_percent": 3.5}, {"gate": {"fps": 15.0}}),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_json_round_trip(message: object) -> None:
    data = message.to_json()  # type: ignore[attr-defined]
    assert json.loads(data)["v"] == 1
    assert type(message).from_json(data) == message  # type: ignore[attr-defined]


def bad(cls: type, data: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        cls.from_json(json.dumps(data))  # type: ignore[attr-defined]
    return err.value


def event_dict(**changes: object) -> dict[str, object]:
    base = SAMPLES[0].to_dict()  # type: ignore[union-attr]
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"score": "high"}, "score"),
        ({"score": True}, "score"),
        ({"score": -1}, "score"),
        ({"type": "begin"}, "type"),
        ({"camera": "a/b"}, "camera"),
        ({"camera": "status"}, "camera"),
        ({"event_id": "#"}, "event_id"),
        ({"end_unix_s": 99.0}, "end_unix_s"),
        ({"end_unix_s": None}, "end_unix_s"),
        ({"zones": "road"}, "zones"),
        ({"zones": ["road", 5]}, "zones[1]"),
        ({"seq": -1}, "seq"),
        ({"seq": 1.5}, "seq"),
        ({"v": 2}, "v"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_event_names_the_field(changes: dict[str, object], field: str) -> None:
    assert bad(EventMessage, event_dict(**changes)).field == field


def test_missing_field_and_non_object_and_non_json() -> None:
    data = event_dict()
    del data["start_unix_s"]
    assert bad(EventMessage, data).field == "start_unix_s"
    with pytest.raises(ValidationError) as err:
        EventMessage.from_json(b"[1, 2]")
    assert err.value.field == "payload"
    with pytest.raises(ValidationError) as err:
        EventMessage.from_json(b"\xff\xfe")
    assert err.value.field == "payload"


def test_construction_validates_too() -> None:
    with pytest.raises(ValidationError) as err:
        CameraStatusMessage("s1", "gate", "melting", 1.0)
    assert err.value.field == "state"
    with pytest.raises(ValidationError) as err:
        EventMessage("s1", "gate", "e", "new", math.nan)
    assert err.value.field == "start_unix_s"
    with pytest.raises(ValidationError) as err:
        StatsMessage("s1", 1.0, 1.0, 1, 1, cameras={"gate": {"fps": "fast"}})  # type: ignore[dict-item]
    assert err.value.field == "cameras.gate.fps"
    with pytest.raises(ValidationError) as err:
        DropReport("s1", 1.0, 1.0, {"video": 1}, 0)
    assert err.value.field == "counts.video"


def test_settings_name_the_bad_field(tmp_path: object) -> None:
    with pytest.raises(SettingsError) as err:
        BrokerSettings("h", port=70000)
    assert err.value.field == "port"
    with pytest.raises(SettingsError) as err:
        BrokerSettings("h", ca_file="/nonexistent/ca.crt")
    assert err.value.field == "ca_file"
    with pytest.raises(SettingsError) as err:
        BrokerSettings("h", prefix="a/+")
    assert err.value.field == "prefix"
    with pytest.raises(SettingsError) as err:
        BrokerSettings("h", cert_file=__file__)
    assert err.value.field == "cert_file"
    assert "secret" not in repr(BrokerSettings("h", username="u", password="secret"))
