"""What every step shares: the CLI, settings (booleans included), the step declaration, the step
contract's I/O and exit codes, errors, and the small parsers (durations, times, URLs, size-capped
files)."""
