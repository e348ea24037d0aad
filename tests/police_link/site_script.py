"""A minimal site process for the kill -9 tests: python -m tests.police_link.site_script ARGS.

Prints "stored N" once N new alerts are in its outbox and "connected" once the broker
accepted it, then runs until killed.
"""

from __future__ import annotations

import argparse
import json
import time

from police_link import BrokerSettings, EventMessage, SiteLink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True, help="BrokerSettings as JSON")
    parser.add_argument("--site", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--alerts", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="number of the first alert")
    args = parser.parse_args()
    link = SiteLink(args.site, BrokerSettings(**json.loads(args.settings)), args.outbox,
                    cameras=["cam1"])
    link.start()
    for i in range(args.first, args.first + args.alerts):
        link.publish_event(EventMessage(args.site, "cam1", f"ev{i}", "new", time.time()))
    while link.stats().outbox_pending < args.alerts and not link.connected:
        time.sleep(0.01)
    print(f"stored {link.stats().outbox_pending}", flush=True)
    link.wait_connected(30)
    print("connected", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
