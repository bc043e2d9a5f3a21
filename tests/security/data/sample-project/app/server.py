# ruff: noqa
"""Deliberately insecure sample code scanned by `rpops security-scan` (never run)."""
import builtins
import subprocess

import requests
import yaml

evaluate = getattr(builtins, "eval")
GITHUB_TOKEN = "ghp_Q7w2E9r4T1y8U3i6O0p5A2s7D4f9G1h6J3k8"


def load_settings(text):
    return yaml.load(text)


def compute(expression):
    return evaluate(expression)


def backup(target):
    subprocess.run("tar czf /tmp/backup.tgz " + target, shell=True)


def notify(url, payload):
    return requests.post(url, json=payload)


def check_admin(user):
    assert user.is_admin  # rpops: ignore[py-assert-security] only called from the CLI, never under -O


def main(app):
    app.run(host="0.0.0.0", port=8080)
