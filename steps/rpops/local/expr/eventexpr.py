"""The expr-lang subset WorkflowEventBindings use here, compiled by `rpops.local.expr.exprlang`.

Argo evaluates a binding's `spec.event.selector` and each `valueFrom.event` with expr-lang over
`{discriminator, namespace, payload, metadata}`. `rpops local serve` accepts this subset and
refuses anything else when it loads the binding (never at request time):

    literals     "text" 'text' 12 1.5 true false nil [a, b]
    names        discriminator namespace payload metadata
    members      a.b  a?.b  a["b"]  a[0]  (a missing key is nil; a member of nil is an error
                 unless written `?.`)
    operators    ||  or   &&  and   !  not   ==  !=  <  <=  >  >=  in  not in   ??   ( )

`&&` and `||` stop at the first operand that decides, so `discriminator == "x" && payload.a.b`
never reads `payload.a.b` for another discriminator. Function calls, arithmetic, `? :`,
`matches`, pipes and closures are refused. There is one expr-lang parser in rpops local
(`exprlang`); this module only fixes the bindings' profile.
"""

from __future__ import annotations

from rpops.local.expr.exprlang import BINDING, ExprError, Expression, argo_string, equal
from rpops.local.expr.exprlang import compile_expression as _compile

ROOTS = BINDING.roots

__all__ = ["ROOTS", "ExprError", "Expression", "argo_string", "compile_expression", "equal"]


def compile_expression(source: str) -> Expression:
    """Parse a binding's expression; ExprError names what is outside the subset."""
    return _compile(source, BINDING)
