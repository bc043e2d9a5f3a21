"""The alert loop's one source and its evidence.

- `catalog`: the thresholds, recording rules and alerts, written once; the Prometheus rules
  file and the health check's thresholds are generated from it (`rpops.alerting.render`).
- `evidence`: what an alert-driven recovery decides from: the alert's own rule, read back from
  Prometheus, its expression evaluated over its own window for the alert's labels.
"""
