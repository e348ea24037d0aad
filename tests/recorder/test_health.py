"""Health state, stall detection, alarms, and the /health and /metrics endpoints."""

from __future__ import annotations

import json
import logging
import re

import aiohttp
import pytest

from recorder.health import (
    HealthError,
    HealthRegistry,
    HealthServer,
    MetricSample,
    StreamState,
)


def test_sample_computes_fps_and_bitrate_from_counter_deltas() -> None:
    registry = HealthRegistry("s1")
    h = registry.stream("gate", "main")
    h.set_state(StreamState.RECORDING)
    registry.sample(100.0)
    h.packets, h.bytes_received, h.last_packet_monotonic = 30, 250_000, 101.9
    registry.sample(102.0)
    assert h.fps == pytest.approx(15.0)
    assert h.bitrate_bps == pytest.approx(1_000_000)


def test_stall_is_noticed_and_cleared_and_logged_once(caplog) -> None:
    registry = HealthRegistry("s1", stall_after_s=3.0)
    h = registry.stream("gate", "sub")
    with caplog.at_level(logging.INFO, logger="recorder.health"):
        h.set_state(StreamState.RECORDING)
        h.last_packet_monotonic = 10.0
        caplog.clear()  # the state before the stall is not what is tested
        registry.sample(12.0)
        assert h.state == StreamState.RECORDING
        registry.sample(13.5)
        registry.sample(14.0)
        assert h.state == StreamState.STALLED
        h.last_packet_monotonic = 14.5
        registry.sample(14.6)
    assert h.state == StreamState.RECORDING
    changes = [r for r in caplog.records if "->" in r.getMessage()]
    assert [r.getMessage().split(": ", 1)[1][:22] for r in changes] == [
        "recording -> stalled (",
        "stalled -> recording (",
    ]
    assert all(r.site == "s1" and r.camera == "gate/sub" for r in changes)


def test_site_status_and_alarms() -> None:
    registry = HealthRegistry("s1")
    registry.stream("gate", "main").set_state(StreamState.RECORDING)
    assert registry.snapshot()["status"] == "ok"
    registry.stream("gate", "sub").set_state(StreamState.OFFLINE)
    assert registry.snapshot()["status"] == "degraded"
    registry.set_alarm("storage", "disk full")
    body = registry.snapshot()
    assert body["status"] == "alarm" and body["alarms"] == {"storage": "disk full"}
    registry.set_alarm("storage", None)
    assert registry.snapshot()["alarms"] == {}


_SAMPLE_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$')


async def test_endpoints_serve_json_and_prometheus_text() -> None:
    registry = HealthRegistry("s1")
    h = registry.stream("gate", "main")
    h.set_state(StreamState.RECORDING)
    h.packets, h.bytes_received, h.reconnects = 10, 5000, 3
    registry.set_alarm("storage", "disk full")
    registry.add_collector(
        lambda: [MetricSample("dozor_storage_free_bytes", "Free.", "gauge", 1234)]
    )
    registry.add_section("storage", lambda: {"free_bytes": 1234})
    server = HealthServer(registry, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/health") as resp:
                assert resp.status == 200
                body = json.loads(await resp.text())
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as resp:
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                text = await resp.text()
            async with session.get(f"http://127.0.0.1:{server.port}/other") as resp:
                assert resp.status == 404
    finally:
        await server.stop()
    gate = body["cameras"]["gate"]["main"]
    assert gate["state"] == "recording" and gate["reconnects"] == 3 and gate["packets"] == 10
    assert body["storage"] == {"free_bytes": 1234} and body["site"] == "s1"
    assert 'dozor_stream_reconnects_total{site="s1",camera="gate",stream="main"} 3' in text
    assert 'dozor_alarm{site="s1",alarm="storage"} 1' in text
    assert 'dozor_storage_free_bytes{site="s1"} 1234' in text
    for line in text.splitlines():  # every line is a comment or a well-formed sample
        assert line.startswith("# ") or _SAMPLE_LINE.match(line), line
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def test_a_broken_collector_does_not_break_metrics() -> None:
    registry = HealthRegistry("s1")

    def broken() -> list[MetricSample]:
        raise RuntimeError("boom")

    registry.add_collector(broken)
    assert "dozor_up" in registry.metrics_text()


async def test_a_taken_port_gives_a_clear_error() -> None:
    registry = HealthRegistry("s1")
    first = HealthServer(registry, port=0)
    await first.start()
    try:
        second = HealthServer(registry, port=first.port or 0)
        with pytest.raises(HealthError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()


def test_fps_spans_two_seconds_when_packets_come_in_batches() -> None:
    """Streams are read five times a second; sampled every 0.3 s, a per-sample rate would
    swing between 0 and 2x. Averaged over at least 2 s it stays at the stream's 15 fps."""
    registry = HealthRegistry("s1")
    h = registry.stream("gate", "main")
    h.set_state(StreamState.RECORDING)
    rates = []
    for tick in range(1, 41):  # 0.1 s ticks over 4 s
        now = 100.0 + tick / 10
        if tick % 2 == 0:  # a batch of three frames every 0.2 s
            h.packets += 3
            h.last_packet_monotonic = now
        if tick % 3 == 0:
            registry.sample(now)
            if now >= 102.0:
                rates.append(h.fps)
    assert rates and all(13.0 <= r <= 17.0 for r in rates), rates
