"""The admin listener: admin API (bearer token), Prometheus ``/metrics`` and the status page."""
