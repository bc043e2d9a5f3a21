"""Scheduling and node processes: the run, steps and DAGs, leaves, processes, each node's view."""
