"""The topic registry: vendor payloads in, CameraEvents out; unknown topics logged once."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from lxml import etree

from camera_drivers.event_parsers import (
    EventParser,
    Notification,
    normalize_topic,
    notification_from_zeep,
)
from camera_drivers.models import CameraEventKind

_TT = "http://www.onvif.org/ver10/schema"


def _zeep_shaped(topic: str, message_xml: str) -> dict[str, object]:
    """What zeep hands back when it keeps tt:Message as raw XML (xsd:any)."""
    element = etree.fromstring(f'<tt:Message xmlns:tt="{_TT}" {message_xml}')
    return {"Topic": {"_value_1": topic}, "Message": {"_value_1": element}}


def test_hikvision_cell_motion_detector():
    message = _zeep_shaped(
        "tns1:RuleEngine/CellMotionDetector/Motion",
        'UtcTime="2026-11-26T06:00:01Z" PropertyOperation="Changed">'
        '<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/>'
        '<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/>'
        '<tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source>'
        '<tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message>',
    )
    event = EventParser("hik").parse(notification_from_zeep(message))
    assert event is not None
    assert event.kind is CameraEventKind.MOTION and event.active
    assert event.topic == "RuleEngine/CellMotionDetector/Motion"
    assert event.source == "VideoSourceToken"
    assert event.camera_time == dt.datetime(2026, 11, 26, 6, 0, 1, tzinfo=dt.UTC)
    assert not event.initial


@pytest.mark.parametrize(
    ("topic", "item", "kind"),
    [
        ("tns1:RuleEngine/TamperDetector/Tamper", "IsTamper", CameraEventKind.TAMPER),
        ("tns1:VideoSource/GlobalSceneChange/ImagingService", "State", CameraEventKind.TAMPER),
        ("tns1:VideoSource/SignalLoss", "State", CameraEventKind.SIGNAL_LOSS),
        ("tns1:VideoSource/MotionAlarm", "State", CameraEventKind.MOTION),
    ],
)
def test_tamper_signal_loss_and_motion_topics(topic, item, kind):
    message = _zeep_shaped(
        topic,
        'UtcTime="2026-11-26T06:00:01Z" PropertyOperation="Initialized">'
        '<tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source>'
        f'<tt:Data><tt:SimpleItem Name="{item}" Value="false"/></tt:Data></tt:Message>',
    )
    event = EventParser("cam").parse(notification_from_zeep(message))
    assert event is not None
    assert (event.kind, event.active, event.initial, event.source) == (
        kind, False, True, "VideoSource_1"
    )


def test_unknown_topic_is_logged_once_per_camera(caplog):
    parser = EventParser("cam7")
    unknown = Notification(topic="Device/Trigger/DigitalInput", data={"LogicalState": "true"})
    with caplog.at_level(logging.INFO, logger="camera_drivers.event_parsers"):
        assert parser.parse(unknown) is None
        assert parser.parse(unknown) is None
    lines = [r.getMessage() for r in caplog.records if "unknown topic" in r.getMessage()]
    assert lines == ["camera cam7: ignoring events on unknown topic Device/Trigger/DigitalInput "
                     "(logged once)"]


def test_known_topic_without_its_data_item_gives_no_event():
    parser = EventParser("cam")
    assert parser.parse(Notification(topic="VideoSource/MotionAlarm", data={"Other": "1"})) is None


def test_vendor_prefixes_are_removed_from_every_segment():
    assert normalize_topic("tns1:RuleEngine/tnsaxis:VMD3/vmd3_video_1") == (
        "RuleEngine/VMD3/vmd3_video_1"
    )
