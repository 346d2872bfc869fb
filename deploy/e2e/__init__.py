"""``make test-deploy``: the docker-compose stack really run, on this machine.

It starts a Docker engine when none runs, builds a Debian base image when Docker Hub's images
cannot be had, builds the repository's images from its Dockerfiles, exports MiniLM, brings the
compose stack up with ``docker-compose`` and drives it through its published loopback ports:
traffic split, OIP v2, gRPC, Prometheus, Grafana (or, without a Grafana image, the dashboard's
queries against the live Prometheus), the admin API, and a killed TorchServe. Everything is torn
down at the end, also on failure, and each step's time is reported.

Modules: ``steps`` (timed steps, the summary), ``engine`` (dockerd, base image, builds),
``mirror`` (this machine's pip indexes served to the build on loopback), ``stack`` (compose),
``checks`` (traffic, admin API), ``observe`` (Prometheus, Grafana, dashboard),
``failure`` (TorchServe killed under traffic).
"""
