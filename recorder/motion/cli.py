"""dozor-motion FILE [--config F] [--camera NAME]: the motion detector over a video file.

Prints one JSON line per event: start and end (seconds from the start of the file),
peak_area (fraction of the frame), zones, score. The configuration is a site TOML file: the
`motion` table of the camera named by --camera (`[[cameras]]` with `name`), or a top-level
`[motion]` table; without --config the defaults are used.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recorder.motion.config import MotionConfig
from recorder.motion.errors import MotionInputError
from recorder.motion.offline import detect_file


def load_motion_config(path: Path, camera: str | None) -> MotionConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise MotionInputError(f"{path}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise MotionInputError(f"{path}: not valid TOML: {err}") from err
    table: Any = None
    where = "motion"
    cameras = doc.get("cameras", [])
    if camera is not None:
        if not isinstance(cameras, list):
            raise MotionInputError(f"{path}: cameras: expected [[cameras]] tables")
        for i, cam in enumerate(cameras):
            if isinstance(cam, dict) and cam.get("name") == camera:
                table, where = cam.get("motion", {}), f"cameras[{i}].motion"
                break
        else:
            names = [c.get("name") for c in cameras if isinstance(c, dict)]
            raise MotionInputError(f"{path}: no camera named {camera!r} (cameras: {names})")
    else:
        table = doc.get("motion")
        if table is None and isinstance(cameras, list) and len(cameras) == 1:
            table, where = cameras[0].get("motion", {}), "cameras[0].motion"
        if table is None:
            raise MotionInputError(
                f"{path}: no [motion] table; name a camera with --camera NAME"
            )
    try:
        return MotionConfig.from_mapping(table, where=where)
    except ValueError as err:
        raise MotionInputError(f"{path}: {err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="dozor-motion",
        description="Run Dozor's motion detector over a video file; one JSON line per event.",
    )
    ap.add_argument("file", type=Path, help="a video file (mp4, mkv, ts...)")
    ap.add_argument("--config", type=Path, help="site TOML file (or one with a [motion] table)")
    ap.add_argument("--camera", help="which camera's motion settings to use from --config")
    ap.add_argument("--verbose", "-v", action="store_true", help="log to stderr")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_motion_config(args.config, args.camera) if args.config else MotionConfig()
        result = detect_file(args.file, cfg, camera=args.camera or args.file.stem)
    except MotionInputError as err:
        print(f"dozor-motion: {err}", file=sys.stderr)
        return 2
    for ev in result.events:
        assert ev.end_wall is not None
        print(json.dumps({
            "start": round(ev.start_wall, 3),
            "end": round(ev.end_wall, 3),
            "peak_area": ev.peak_area,
            "zones": list(ev.zones),
            "score": ev.score,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
