"""Records: the node store and the run's status document on disk."""
