#!/usr/bin/env python3
"""Container healthcheck: exit 0 when URL answers 200, else 1 (standard library only).

    servegate-healthcheck http://127.0.0.1:8000/v2/health/ready
    servegate-healthcheck http://127.0.0.1:8080/ping --key-file /path/to/key_file.json

With ``--key-file`` it sends TorchServe's inference key (TorchServe answers an unauthenticated
``/ping`` with 400 while token authorization is on). Installed in the image as
``servegate-healthcheck``; compose healthchecks call it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--key-file", help="TorchServe's key_file.json: send its inference key")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    request = urllib.request.Request(args.url)
    if args.key_file:
        try:
            with open(args.key_file) as fh:
                key = json.load(fh)["inference"]["key"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            sys.stderr.write(f"unhealthy: no inference key in {args.key_file}: {exc}\n")
            return 1
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"unhealthy: {args.url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"unhealthy: {args.url} answered {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
