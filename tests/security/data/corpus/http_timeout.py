# ruff: noqa
# Labelled corpus: py-http-no-timeout. httpx has a 5 s default timeout, so only timeout=None is flagged there.
import httpx
import requests


def fetch(url, payload):
    requests.get(url)  # expect[py-http-no-timeout]
    requests.post(url, json=payload)  # expect[py-http-no-timeout]
    requests.request("GET", url)  # expect[py-http-no-timeout]
    requests.get(url, timeout=None)  # expect[py-http-no-timeout]
    httpx.get(url, timeout=None)  # expect[py-http-no-timeout]
    requests.get(url, timeout=5)  # ok
    requests.put(url, data=payload, timeout=(3, 10))  # ok
    httpx.get(url)  # ok: httpx defaults to a 5 s timeout
    httpx.Client(timeout=10.0)  # ok
