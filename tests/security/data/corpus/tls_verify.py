# ruff: noqa
# Labelled corpus: py-tls-verify-disabled.
import httpx
import requests


def fetch(url, session):
    requests.get(url, verify=False, timeout=5)  # expect[py-tls-verify-disabled]
    httpx.get(url, verify=False)  # expect[py-tls-verify-disabled]
    httpx.Client(verify=False)  # expect[py-tls-verify-disabled]
    requests.get(url, verify=True, timeout=5)  # ok
    requests.get(url, verify="/etc/ssl/ca.pem", timeout=5)  # ok: a CA bundle
