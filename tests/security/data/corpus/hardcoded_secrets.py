# ruff: noqa
# Labelled corpus: py-hardcoded-secret (high-entropy literals bound to secret-like names).
import os

API_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"  # expect[py-hardcoded-secret]
DB_PASSWORD = "N7#qL9!vT2@xR5$w"  # expect[py-hardcoded-secret]
settings = {"client_secret": "9f86d081884c7d659a2feaa0c55ad015"}  # expect[py-hardcoded-secret]
PASSWORD_FIELD = "password"  # ok: names the field, low entropy
TOKEN_URL = "https://auth.example.org/oauth/token"  # ok: a URL, not a secret
password = ""  # ok: empty
token = os.environ["TOKEN"]  # ok: read from the environment
secret = "<set-me>"  # ok: placeholder


class Config:
    auth_token = "ghp_R2d4x9Kq7LmZ1vB8nT3yW6cJ0fH5sPaE"  # expect[py-hardcoded-secret]


def connect(host, password="Zx8#rT4!mQ1@wE9$"):  # expect[py-hardcoded-secret]
    return login(host, password="Kj3$vB7!nM2@qW8#pL")  # expect[py-hardcoded-secret]


def login(host, password=None):  # ok: no default secret
    return host
