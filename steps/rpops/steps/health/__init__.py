"""The health step."""
