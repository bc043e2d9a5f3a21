# ruff: noqa
# Labelled corpus: py-jinja2-autoescape.
import jinja2
from jinja2 import Environment, FileSystemLoader, select_autoescape


def make():
    a = jinja2.Environment(loader=FileSystemLoader("t"))  # expect[py-jinja2-autoescape]
    b = Environment(autoescape=False)  # expect[py-jinja2-autoescape]
    c = Environment(autoescape=select_autoescape())  # ok
    d = jinja2.Environment(autoescape=True)  # ok
    return a, b, c, d
