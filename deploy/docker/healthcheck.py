#!/usr/bin/env python3
"""Container healthcheck: exit 0 when every URL is healthy, else 1.

    servegate-healthcheck http://127.0.0.1:8000/v2/health/ready grpc://127.0.0.1:9000
    servegate-healthcheck http://127.0.0.1:8080/ping --key-file /path/to/key_file.json

An ``http(s)://`` URL must answer 200 (standard library only); a ``grpc://host:port`` must
answer ``grpc.health.v1.Health/Check`` with SERVING (grpcio, in the image). With ``--key-file``
it sends TorchServe's inference key (TorchServe answers an unauthenticated ``/ping`` with 400
while token authorization is on). Installed in the image as ``servegate-healthcheck``; compose
healthchecks call it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", metavar="url")
    parser.add_argument("--key-file", help="TorchServe's key_file.json: send its inference key")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    for url in args.urls:
        check = _grpc if url.startswith("grpc://") else _http
        if check(url, args) != 0:
            return 1
    return 0


def _grpc(url: str, args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = url.removeprefix("grpc://")
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
    except grpc.RpcError as exc:
        sys.stderr.write(f"unhealthy: {url}: {exc.code().name}\n")
        return 1
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        sys.stderr.write(f"unhealthy: {url} is {name}\n")
        return 1
    return 0


def _http(url: str, args: argparse.Namespace) -> int:
    request = urllib.request.Request(url)
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
        sys.stderr.write(f"unhealthy: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"unhealthy: {url} answered {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
