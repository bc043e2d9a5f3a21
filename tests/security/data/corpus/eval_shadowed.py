# ruff: noqa
# Labelled corpus: names that are not the builtin eval (no finding expected).
from rules import evaluate as eval


def check(expr):
    return eval(expr)  # ok: eval is rules.evaluate here


class Model:
    def eval(self):  # ok: a method definition
        return self
