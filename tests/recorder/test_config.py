"""Config loading: one test per kind of bad configuration, each checking the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.config import ConfigError, load_config, parse_config, parse_size

GOOD = """
site = "selo-1"

[storage]
root = "{root}"
segment_duration_s = 4
quota_bytes = "2GiB"
min_free_bytes = 1073741824

[health]
port = 0

[[cameras]]
name = "gate"
main_url = "rtsp://10.0.0.5:554/main"
sub_url = "rtsp://10.0.0.5:554/sub"
user = "admin"
password = "p@ss:w/rd"
retain_days = 7

[[cameras]]
name = "square"
onvif_url = "http://10.0.0.6/onvif/device_service"
user = "admin"
password_file = "cam.secret"

[cameras.motion]
trigger = "both"
"""


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "cam.secret").write_text("s3cret\n")
    (tmp_path / "video").mkdir()
    return tmp_path


def write(site_dir: Path, text: str) -> Path:
    path = site_dir / "site.toml"
    path.write_text(text.replace("{root}", str(site_dir / "video")))
    return path


def error_of(site_dir: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(site_dir, text))
    return str(info.value)


def test_good_config_loads_with_defaults_and_resolved_secrets(site_dir: Path) -> None:
    cfg = load_config(write(site_dir, GOOD))
    assert cfg.site == "selo-1"
    assert cfg.storage.quota_bytes == 2 << 30
    assert cfg.storage.segment_duration_s == 4.0
    assert cfg.broker is None
    gate, square = cfg.cameras
    assert gate.retain_days == 7
    assert square.retain_days == cfg.storage.retain_days
    assert square.password == "s3cret"  # read from the file, newline stripped
    assert "s3cret" not in repr(square)
    assert gate.authenticated_url(gate.main_url or "") == (
        "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/main"
    )


def test_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config" / "site.example.toml"
    cfg = load_config(example, check_paths=False)
    assert cfg.cameras


@pytest.mark.parametrize(
    ("text", "value"),
    [("20GiB", 20 << 30), ("500 MB", 500_000_000), ("1.5KiB", 1536), ("42", 42), (7, 7)],
)
def test_sizes_accept_strings_and_integers(text: object, value: int) -> None:
    assert parse_size(text) == value


def test_bad_size_names_key(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('"2GiB"', '"2 parsecs"'))
    assert "storage.quota_bytes" in msg and "2 parsecs" in msg


def test_unknown_key_is_named_with_its_path(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('name = "square"', 'name = "square"\nfps = 3'))
    assert "cameras[1].fps: unknown key" in msg


def test_wrong_type_names_key_and_types(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('"rtsp://10.0.0.5:554/main"', "554"))
    assert "cameras[0].main_url: expected a string, got integer" in msg


def test_missing_required_key(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('root = "{root}"', 'retain_days = 3'))
    assert "storage.root: missing required key" in msg


def test_missing_site(site_dir: Path) -> None:
    assert "site: missing required key" in error_of(site_dir, GOOD.replace('site = "selo-1"', ""))


def test_invalid_toml_names_file_and_line(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD + "\n[storage\n")
    assert "site.toml" in msg and "not valid TOML" in msg


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/site.toml")


def test_onvif_camera_without_credentials(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('password_file = "cam.secret"', ""))
    assert "cameras[1]: onvif_url needs credentials" in msg


def test_unreadable_password_file(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('"cam.secret"', '"nope.secret"'))
    assert "cameras[1].password_file: cannot read" in msg


def test_camera_without_any_url(site_dir: Path) -> None:
    text = GOOD.replace('onvif_url = "http://10.0.0.6/onvif/device_service"', "")
    msg = error_of(site_dir, text.replace('trigger = "both"', ""))
    assert "cameras[1]: give onvif_url" in msg


def test_stream_url_must_be_rtsp(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace("rtsp://10.0.0.5:554/sub", "http://10.0.0.5/sub"))
    assert "cameras[0].sub_url: must start with rtsp:// or rtsps://" in msg


def test_url_without_host(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace("rtsp://10.0.0.5:554/main", "rtsp:///main"))
    assert "cameras[0].main_url: no host" in msg


def test_url_with_bad_port(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace("10.0.0.5:554/main", "10.0.0.5:99999/main"))
    assert "cameras[0].main_url: not a valid URL" in msg


def test_duplicate_camera_name(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('name = "square"', 'name = "gate"'))
    assert "cameras[1].name: duplicate camera name 'gate'" in msg


def test_bad_camera_name(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('name = "gate"', 'name = "Gate 1"'))
    assert "cameras[0].name" in msg and "a-z" in msg


def test_bad_trigger_value(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace('trigger = "both"', 'trigger = "always"'))
    assert "cameras[1].motion.trigger" in msg and "'always'" in msg


def test_camera_trigger_needs_onvif(site_dir: Path) -> None:
    text = GOOD.replace("retain_days = 7", 'retain_days = 7\n[cameras.motion]\ntrigger = "camera"')
    msg = error_of(site_dir, text)
    assert "cameras[0].motion.trigger" in msg and "needs onvif_url" in msg


def test_the_old_camera_level_triggers_key_is_rejected(site_dir: Path) -> None:
    text = GOOD.replace("retain_days = 7", 'retain_days = 7\ntriggers = "camera"')
    assert "cameras[0].triggers: unknown key" in error_of(site_dir, text)


@pytest.mark.parametrize("name", ["-gate", "_gate", "status", "events", "cmd", "reply"])
def test_camera_name_must_be_a_safe_topic_level(site_dir: Path, name: str) -> None:
    msg = error_of(site_dir, GOOD.replace('name = "gate"', f'name = "{name}"'))
    assert f"cameras[0].name: {name!r}" in msg


def test_no_cameras(site_dir: Path) -> None:
    text = GOOD[: GOOD.index("[[cameras]]")]
    assert "cameras: at least one" in error_of(site_dir, text)


def test_storage_root_not_writable(site_dir: Path) -> None:
    if os.geteuid() == 0:
        blocker = site_dir / "file"
        blocker.write_text("x")
        msg = error_of(site_dir, GOOD.replace('root = "{root}"', f'root = "{blocker}/video"'))
        assert "storage.root" in msg and "not writable" in msg
    else:
        ro = site_dir / "ro"
        ro.mkdir(mode=0o500)
        msg = error_of(site_dir, GOOD.replace('root = "{root}"', f'root = "{ro}"'))
        assert "storage.root" in msg and "not writable" in msg


def test_storage_root_is_a_file(site_dir: Path) -> None:
    (site_dir / "afile").write_text("x")
    msg = error_of(site_dir, GOOD.replace('root = "{root}"', f'root = "{site_dir}/afile"'))
    assert "storage.root" in msg and "not a directory" in msg


def test_thresholds_in_wrong_order(site_dir: Path) -> None:
    text = GOOD.replace("min_free_bytes = 1073741824", 'min_free_bytes = "1MiB"')
    assert "storage.stop_below_free_bytes" in error_of(site_dir, text)


def test_segment_duration_out_of_range(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace("segment_duration_s = 4", "segment_duration_s = 0"))
    assert "storage.segment_duration_s: must be between 1 and 3600" in msg


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('rtsp_client = "gstreamer"', "ingest.rtsp_client: expected one of dozor, ffmpeg"),
        ("read_batch_s = 5", "ingest.read_batch_s: must be between 0 and 1 s"),
        ('read_batch_s = "fast"', "ingest.read_batch_s"),
        ("batch = 1", "ingest.batch"),
    ],
)
def test_bad_ingest_settings_are_named(site_dir: Path, table: str, expected: str) -> None:
    msg = error_of(site_dir, GOOD.replace("[health]", f"[ingest]\n{table}\n\n[health]"))
    assert expected in msg


def test_ingest_settings_reach_the_daemon(site_dir: Path) -> None:
    from recorder.daemon import Recorder
    from recorder.ingest import PyavOpener
    from recorder.rtsp_source import FallbackOpener

    table = '[ingest]\nrtsp_client = "ffmpeg"\nread_batch_s = 0\n\n[health]'
    cfg = load_config(write(site_dir, GOOD.replace("[health]", table)))
    assert (cfg.ingest.rtsp_client, cfg.ingest.read_batch_s) == ("ffmpeg", 0.0)
    recorder = Recorder(cfg)
    assert recorder.options.ingest.read_batch_s == 0.0
    assert isinstance(recorder._opener, PyavOpener)
    default = load_config(write(site_dir, GOOD))
    assert default.ingest.read_batch_s == 0.2
    assert isinstance(Recorder(default)._opener, FallbackOpener)


def test_health_listen_must_be_an_address(site_dir: Path) -> None:
    msg = error_of(site_dir, GOOD.replace("port = 0", 'listen = "localhost:80"\nport = 0'))
    assert "health.listen" in msg


def test_broker_cert_without_key(site_dir: Path) -> None:
    (site_dir / "c.pem").write_text("x")
    text = GOOD + '\n[broker]\nhost = "police.example"\ncert_file = "c.pem"\n'
    assert "broker.cert_file: cert_file and key_file go together" in error_of(site_dir, text)


def test_broker_missing_ca_file(site_dir: Path) -> None:
    text = GOOD + '\n[broker]\nhost = "police.example"\nca_file = "ca.pem"\n'
    assert "broker.ca_file: cannot read" in error_of(site_dir, text)


def test_broker_defaults_outbox_under_storage_root(site_dir: Path) -> None:
    cfg = load_config(write(site_dir, GOOD + '\n[broker]\nhost = "police.example"\n'))
    assert cfg.broker is not None
    assert cfg.broker.outbox_path == site_dir / "video" / "outbox.sqlite"
    assert cfg.broker.port == 8883 and cfg.broker.tls


def test_motion_table_is_parsed_and_validated(site_dir: Path) -> None:
    good = GOOD.replace('trigger = "both"', 'trigger = "both"\nsensitivity = 8')
    cfg = load_config(write(site_dir, good))
    assert cfg.cameras[1].motion.sensitivity == 8
    assert cfg.cameras[1].motion.trigger == "both"
    msg = error_of(site_dir, GOOD.replace('trigger = "both"', 'trigger = "both"\nsensitivity = 80'))
    assert "cameras[1].motion.sensitivity" in msg


def test_parse_config_accepts_a_mapping(tmp_path: Path) -> None:
    cfg = parse_config(
        {"site": "s", "storage": {"root": str(tmp_path)},
         "cameras": [{"name": "a", "main_url": "rtsp://h/x"}]}
    )
    assert cfg.cameras[0].retain_days == 30.0


def test_cli_check_config_exit_codes(site_dir: Path) -> None:
    good = write(site_dir, GOOD)
    ok = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "--config", str(good), "--check-config"],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = write(site_dir, GOOD.replace("segment_duration_s = 4", 'segment_duration_s = "4"'))
    res = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "--config", str(bad), "--check-config"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert "storage.segment_duration_s: expected a number, got string" in res.stderr


def test_motion_trigger_camera_needs_onvif(site_dir: Path) -> None:
    text = GOOD.replace("retain_days = 7", 'retain_days = 7\n[cameras.motion]\ntrigger = "camera"')
    msg = error_of(site_dir, text)
    assert "cameras[0].motion.trigger" in msg and "needs onvif_url" in msg
