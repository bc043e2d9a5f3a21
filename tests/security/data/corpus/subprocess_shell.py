# ruff: noqa
# Labelled corpus: py-subprocess-shell.
import subprocess
import subprocess as sp
from subprocess import Popen, run

SHELL_OPTS = {"shell": True}


def deploy(cmd, args):
    subprocess.call(cmd, shell=True)  # expect[py-subprocess-shell]
    subprocess.run(cmd, shell=True, check=True)  # expect[py-subprocess-shell]
    sp.check_output(cmd, shell=True)  # expect[py-subprocess-shell]
    Popen(cmd, shell=True)  # expect[py-subprocess-shell]
    run(cmd, **{"shell": True})  # expect[py-subprocess-shell]
    subprocess.run(cmd, **SHELL_OPTS)  # expect[py-subprocess-shell]
    subprocess.getoutput(cmd)  # expect[py-subprocess-shell]
    subprocess.run(["ls", "-l"], shell=False)  # ok: no shell
    subprocess.run(["git", "status"])  # ok: argument list, no shell
    run(args, check=True)  # ok
