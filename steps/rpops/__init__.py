"""rpops: operations pipelines for the Research Platform."""

__version__ = "0.1.0"
