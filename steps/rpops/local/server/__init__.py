"""`rpops local serve`: Argo's events API, WorkflowEventBindings and CronWorkflow schedules."""
