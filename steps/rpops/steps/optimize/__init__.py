"""The optimize step."""
