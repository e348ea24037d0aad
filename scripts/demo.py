"""`make demo`: simulated cameras, a broker, a recorder and the viewer, wired as in production.

Everything runs on this machine, every part as its own process, speaking the real protocols:
ONVIF and RTSP from `dozor-camsim`, MQTT 5 over TLS through mosquitto with the police-station
configuration from config/mosquitto/ (passwords, ACLs), one `dozor-recorder` for the site and
`dozor-viewer` over HTTPS. The demo's state lives in a fresh directory each run (default
var/demo); Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.mosquitto import MosquittoBroker  # noqa: E402  (after the path is set)

BIN = Path(sys.executable).parent  # the venv's console scripts
SITE = "selo-hall"
START_TIMEOUT_S = 300.0  # the simulator encodes its clips on the very first run


@dataclass(frozen=True)
class DemoCamera:
    name: str
    onvif: str
    user: str
    password: str


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def start_simulator(cameras: int, log: Path) -> tuple[subprocess.Popen[str], list[DemoCamera]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_drivers.sim", "--cameras", str(cameras), "--json",
         "--loop-s", "60", "--motion", "20:28", "--motion", "45:50"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )
    found: list[DemoCamera] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    assert proc.stdout is not None
    while len(found) < cameras and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"demo: the camera simulator stopped; see {log}")
        row = json.loads(line)
        found.append(DemoCamera(row["name"], row["onvif"], row["user"], row["password"]))
    return proc, found


def site_config(state: Path, broker: MosquittoBroker, cameras: list[DemoCamera]) -> Path:
    lines = [
        f"site = {toml_str(SITE)}",
        "[storage]",
        f"root = {toml_str(str(state / 'recordings'))}",
        "segment_duration_s = 60",
        "retain_days = 7",
        "[health]",
        'listen = "127.0.0.1"',
        "port = 9310",
        *broker.toml_table(SITE, outbox_path=str(state / "outbox.sqlite")),
    ]
    for cam in cameras:
        lines += [
            "[[cameras]]",
            f"name = {toml_str(cam.name)}",
            f"onvif_url = {toml_str(cam.onvif)}",
            f"user = {toml_str(cam.user)}",
            f"password = {toml_str(cam.password)}",
        ]
    path = state / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def viewer_config(state: Path, broker: MosquittoBroker, listen: str, port: int) -> Path:
    path = state / "viewer.toml"
    path.write_text("\n".join([
        "[http]",
        f"listen = {toml_str(listen)}",
        f"port = {port}",
        "[storage]",
        f"state_dir = {toml_str(str(state / 'viewer'))}",
        *broker.toml_table("viewer", client_id="dozor-viewer-demo"),
        "[health]",
        "offline_after_s = 30",
    ]) + "\n")
    return path


def wait_for_admin_password(proc: subprocess.Popen[str], log: Path) -> str:
    assert proc.stdout is not None
    with log.open("w") as out:
        while True:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"demo: the viewer stopped; see {log}")
            out.write(line)
            out.flush()
            if "with password:" in line:
                return line.rsplit(":", 1)[1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / "var" / "demo")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--listen", default="127.0.0.1", help="the viewer's address")
    parser.add_argument("--port", type=int, default=8443, help="the viewer's HTTPS port")
    args = parser.parse_args()

    state: Path = args.dir.resolve()
    shutil.rmtree(state, ignore_errors=True)
    (state / "logs").mkdir(parents=True)
    logs = state / "logs"
    procs: list[subprocess.Popen[str]] = []
    broker = MosquittoBroker.launch(state / "mqtt", sites=(SITE,))
    try:
        print(f"demo: broker (MQTT 5 over TLS) on {broker.host}:{broker.port}", flush=True)
        print("demo: starting the camera simulator (the first run encodes its clips)", flush=True)
        sim, cameras = start_simulator(args.cameras, logs / "camsim.log")
        procs.append(sim)
        for cam in cameras:
            print(f"demo: camera {cam.name}: {cam.onvif}", flush=True)
        recorder = subprocess.Popen(
            [str(BIN / "dozor-recorder"), "--config",
             str(site_config(state, broker, cameras))],
            cwd=REPO, stdout=(logs / "recorder.log").open("w"), stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(recorder)
        viewer = subprocess.Popen(
            [str(BIN / "dozor-viewer"), "--config",
             str(viewer_config(state, broker, args.listen, args.port))],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        procs.append(viewer)
        password = wait_for_admin_password(viewer, logs / "viewer.log")
        print(
            f"\nDozor demo is running.\n"
            f"  viewer:    https://{args.listen}:{args.port}/  (self-signed certificate)\n"
            f"  log in:    admin / {password}   (printed once; the demo starts afresh each run)\n"
            f"  recorder:  http://127.0.0.1:9310/health  and  /metrics\n"
            f"  footage:   {state / 'recordings'}\n"
            f"  logs:      {logs}\n"
            f"Motion is scripted at 20-28 s and 45-50 s of every minute. Ctrl-C stops the demo.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(p.poll() is None for p in procs):
            assert viewer.stdout is not None
            line = viewer.stdout.readline()  # keep draining the viewer's output into its log
            if line:
                with (logs / "viewer.log").open("a") as out:
                    out.write(line)
            else:
                time.sleep(0.5)
        stopped = [Path(str(p.args[0])).name for p in procs if p.poll() is not None]
        print(f"demo: a process stopped ({', '.join(map(str, stopped))}); see {logs}")
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
