# ruff: noqa
# Labelled corpus: py-tempfile-mktemp.
import tempfile
from tempfile import mktemp


def scratch():
    a = tempfile.mktemp()  # expect[py-tempfile-mktemp]
    b = mktemp(suffix=".txt")  # expect[py-tempfile-mktemp]
    fd, c = tempfile.mkstemp()  # ok
    with tempfile.NamedTemporaryFile() as fh:  # ok
        return a, b, c, fh
