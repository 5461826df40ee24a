"""Manage the devices a service admits: each gets its own token, shown once.

    python -m serve.devices --state-dir DIR add cam-7      # prints the token
    python -m serve.devices --state-dir DIR list
    python -m serve.devices --state-dir DIR revoke cam-7   # takes effect within seconds

Works on the store directly (no Ray, no running service needed), so the operator can add a
device before the service starts.
"""

from __future__ import annotations

import argparse
import sys
import time

from ams_ray.service.device_registry import DeviceRegistry, RegistryError
from ams_ray.service.settings import ServiceSettings, expand_local


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.devices", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", default=ServiceSettings().state_url, help="the service's --state-dir")
    commands = p.add_subparsers(dest="command", required=True)
    commands.add_parser("add", help="register a device and print its token").add_argument("device_id")
    commands.add_parser("list", help="registered devices (never their tokens)")
    commands.add_parser("revoke", help="stop admitting a device's token").add_argument("device_id")
    args = p.parse_args(argv)
    registry = DeviceRegistry(expand_local(args.state_dir))
    try:
        if args.command == "add":
            token = registry.add(args.device_id)
            print(f"device {args.device_id} added; its token (shown only now):\n{token}")
        elif args.command == "revoke":
            registry.revoke(args.device_id)
            print(f"device {args.device_id} revoked")
        else:
            for device in registry.devices().values():
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(device.created))
                print(f"{device.device_id}\t{'revoked' if device.revoked else 'active'}\tadded {created}")
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
