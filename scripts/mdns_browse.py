#!/usr/bin/env python3
# Lists gossipnet nodes with an mDNS implementation we did not write
# (python-zeroconf: `pip install zeroconf`), to check that our DNS-SD records
# are standard. Browses _gossipnet._tcp.local. for --seconds (default 5) and
# prints one JSON line per resolved service: name, port, addresses, properties.
# --interface IP (repeatable) limits mDNS to the interfaces holding those
# addresses (e.g. 127.0.0.1); without it every interface is used.
# Exit status: 0 if at least one service was found, 1 if none, 2 on bad usage.

import argparse
import json
import sys
import time

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

SERVICE_TYPE = "_gossipnet._tcp.local."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interface", action="append", default=[])
    args = parser.parse_args()

    interfaces = args.interface if args.interface else InterfaceChoice.All
    zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    names = []

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added and name not in names:
            names.append(name)

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    printed = set()
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            for name in names:
                if name in printed:
                    continue
                info = zc.get_service_info(SERVICE_TYPE, name, timeout=1000)
                if info is None:
                    continue
                printed.add(name)
                props = {
                    k.decode(errors="replace"): (v.decode(errors="replace") if v is not None else None)
                    for k, v in info.properties.items()
                }
                print(json.dumps({
                    "name": name,
                    "port": info.port,
                    "addresses": info.parsed_addresses(),
                    "properties": props,
                }), flush=True)
    finally:
        browser.cancel()
        zc.close()
    return 0 if printed else 1


if __name__ == "__main__":
    sys.exit(main())
