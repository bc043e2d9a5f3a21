"""Identifier heuristics shared by the code rules and the configuration checks (no regex)."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

_SECRET_TOKENS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "privatekey",
        "secretkey",
        "accesskey",
        "authkey",
    }
)
_KEY_QUALIFIERS = frozenset({"api", "secret", "private", "access", "signing", "encryption", "client", "auth"})
# A name ending in one of these names the place of a secret, not the secret itself.
_NOT_SECRET_SUFFIX = frozenset(
    {
        "url",
        "uri",
        "path",
        "file",
        "filename",
        "dir",
        "name",
        "names",
        "field",
        "fields",
        "header",
        "prefix",
        "suffix",
        "env",
        "var",
        "type",
        "kind",
        "len",
        "length",
        "pattern",
        "format",
        "template",
        "endpoint",
        "label",
        "placeholder",
        "param",
        "re",
        "regex",
        "id",
        "ids",
        "count",
        "expiry",
        "expires",
        "ttl",
        "timeout",
        "policy",
        "mode",
        "class",
        "cls",
        "hash",
        "attr",
    }
)
_SECURITY_TOKENS = frozenset(
    {
        "user",
        "admin",
        "auth",
        "authenticated",
        "authorized",
        "authorised",
        "authorization",
        "permission",
        "permissions",
        "perm",
        "perms",
        "role",
        "roles",
        "token",
        "csrf",
        "login",
        "logged",
        "owner",
        "superuser",
        "staff",
        "privilege",
        "privileges",
        "access",
        "allowed",
        "allow",
        "acl",
        "signature",
        "password",
        "session",
        "credential",
        "credentials",
        "grant",
        "scope",
        "scopes",
        "verified",
        "verify",
    }
)


@lru_cache(maxsize=4096)
def split_identifier(name: str) -> tuple[str, ...]:
    """Split snake_case, kebab-case, dotted and camelCase identifiers into lower-case words."""
    words: list[str] = []
    current: list[str] = []
    prev_lower = False
    for ch in name:
        if ch in "_-. ":
            if current:
                words.append("".join(current))
            current = []
            prev_lower = False
            continue
        if ch.isupper() and prev_lower and current:
            words.append("".join(current))
            current = []
        current.append(ch.lower())
        prev_lower = ch.islower() or ch.isdigit()
    if current:
        words.append("".join(current))
    return tuple(words)


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for names like DB_PASSWORD, apiKey, SECRET_KEY, github_token; false for TOKEN_URL."""
    words = split_identifier(name)
    if not words or words[-1] in _NOT_SECRET_SUFFIX:
        return False
    for i, word in enumerate(words):
        if word in _SECRET_TOKENS:
            return True
        if word == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
    return "".join(words) in _SECRET_TOKENS


def is_security_name(name: str) -> bool:
    """True when an identifier talks about authentication or authorization."""
    return any(word in _SECURITY_TOKENS for word in split_identifier(name))


def shannon_entropy(text: str) -> float:
    """Bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def looks_like_placeholder(value: str) -> bool:
    v = value.strip()
    low = v.lower()
    if (v.startswith("<") and v.endswith(">")) or "${" in v or "{{" in v or v.startswith("$("):
        return True
    if len(set(v)) <= 2:
        return True
    return any(
        marker in low for marker in ("your_", "your-", "example", "placeholder", "changeme", "redacted")
    )


def is_high_entropy_secret(value: str, min_length: int = 8, min_entropy: float = 3.0) -> bool:
    """A literal that looks like a real credential: long enough, varied enough, no placeholder."""
    if len(value) < min_length or len(value) > 4096:
        return False
    if any(ch.isspace() for ch in value.strip()) or looks_like_placeholder(value):
        return False
    if value.startswith(("/", "./", "../")) or ("://" in value and "@" not in value):
        return False
    if looks_like_file_path(value):
        return False
    return shannon_entropy(value) >= min_entropy


# Endings of files that hold settings or secrets: a literal naming such a file is a path, not a key.
_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".env", ".txt", ".pem", ".key")


def looks_like_file_path(value: str) -> bool:
    """`.rpops/secrets.yaml`, `config/token.json`: folders and a file name with a known ending."""
    head, sep, name = value.rpartition("/")
    return bool(sep and head and name) and name.lower().endswith(_FILE_SUFFIXES) and name[0] != "."
