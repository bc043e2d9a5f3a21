"""Loading Argo documents and checking them before a run: schema, model, plan, references."""
