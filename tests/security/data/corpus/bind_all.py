# ruff: noqa
# Labelled corpus: py-bind-all-interfaces.
import socket

HOST = "0.0.0.0"  # expect[py-bind-all-interfaces]


def serve(app, port):
    sock = socket.socket()
    sock.bind(("0.0.0.0", port))  # expect[py-bind-all-interfaces]
    app.run(host="0.0.0.0", port=port)  # expect[py-bind-all-interfaces]
    sock.bind(("127.0.0.1", port))  # ok: loopback
    app.run(host="127.0.0.1")  # ok


def listen(host="0.0.0.0"):  # expect[py-bind-all-interfaces]
    return host
