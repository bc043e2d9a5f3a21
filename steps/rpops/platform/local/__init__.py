"""The local platform: processes on 127.0.0.1 behind a switching proxy, state in a directory."""
