# ruff: noqa
# Labelled corpus: py-eval reached through aliases (Bandit does not follow these).
import builtins
import builtins as b
from builtins import eval as evaluate
from builtins import exec as run_code

e = eval
g = getattr(builtins, "eval")
x_exec = getattr(__builtins__, "exec")


def handler(expr, source):
    evaluate(expr)  # expect[py-eval]
    run_code(source)  # expect[py-eval]
    e(expr)  # expect[py-eval]
    g(expr)  # expect[py-eval]
    x_exec(source)  # expect[py-eval]
    getattr(builtins, "eval")(expr)  # expect[py-eval]
    b.eval(expr)  # expect[py-eval]
    builtins.exec(source)  # expect[py-eval]
    later(expr)  # expect[py-eval]
    getattr(builtins, "print")(expr)  # ok: another builtin


later = e  # an alias of an alias, bound after its use above
