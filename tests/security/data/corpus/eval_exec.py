# ruff: noqa
# Labelled corpus: py-eval (eval, exec, compile(..., "exec")).
import ast
import builtins


def run(expr, source, context):
    eval(expr)  # expect[py-eval]
    exec(source)  # expect[py-eval]
    eval("1 + 1")  # expect[py-eval]
    exec(source, {"__builtins__": {}}, context)  # expect[py-eval]
    code = compile(source, "<rule>", "exec")  # expect[py-eval]
    code = compile(source, "<rule>", mode="exec")  # expect[py-eval]
    expr_code = compile(source, "<rule>", "eval")  # ok: eval-mode compile alone
    value = ast.literal_eval(expr)  # ok: literal_eval is safe
    model.eval()  # ok: a method called eval
    self.executor.exec(source)  # ok: a method called exec
    text = "eval(x) is dangerous"  # ok: a string, not code
    # eval(x) in a comment is not code  # ok
    return code, expr_code, value, text
