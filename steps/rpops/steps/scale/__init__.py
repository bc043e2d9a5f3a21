"""Scaling: the policy, reactive and predictive decisions (pure), the forecast model, and the
state `rpops scale` keeps in annotations. `rpops.steps.scale.cli` observes and acts around them."""
