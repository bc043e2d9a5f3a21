"""Clients of the services a step reads: the HTTP prober and the Prometheus API."""
