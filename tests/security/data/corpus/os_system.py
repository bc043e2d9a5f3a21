# ruff: noqa
# Labelled corpus: py-os-system.
import os
from os import popen as open_pipe
from os import system


def restart(service):
    os.system("systemctl restart " + service)  # expect[py-os-system]
    system("reboot")  # expect[py-os-system]
    os.popen("ls " + service)  # expect[py-os-system]
    open_pipe("uptime")  # expect[py-os-system]
    os.path.join("a", service)  # ok
    os.getenv("SYSTEM")  # ok
