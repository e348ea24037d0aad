"""`dozor-recorder --config site.toml [--check-config]`."""

from __future__ import annotations

import argparse
import sys

from recorder.config import ConfigError, load_config

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dozor-recorder", description="Record one site's cameras (see docs/ingest.md)."
    )
    parser.add_argument("--config", required=True, help="the site TOML file")
    parser.add_argument(
        "--check-config", action="store_true", help="only validate the configuration, then exit"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="default INFO",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, check_paths=True)
    except ConfigError as err:
        print(f"dozor-recorder: configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config}: OK: site {config.site!r}, {len(config.cameras)} camera(s)")
        return 0
    from recorder.daemon import run  # imported late: --check-config stays light

    return run(config, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
