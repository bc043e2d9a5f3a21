"""The steps: one package each, the same files in each (see rpops.core.step)."""
