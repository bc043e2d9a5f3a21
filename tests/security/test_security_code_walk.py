"""The code scan's walk reads only the fields each node class's ASDL signature says can hold a
node: checked against ast.walk (which reads every field) on syntax of every kind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rpops.steps.security import code_rules
from rpops.steps.security.code_rules import _CHILD_FIELDS, _WALKED

SECURITY = Path(code_rules.__file__).parent
CORPUS = Path(__file__).parent / "data" / "corpus"

EVERY_KIND = '''
import os, subprocess as sp
from a.b import c as d
x: int = 1
y = z = [1, *w, {**k, "a": b}, {1, 2}, (i for i in j if i), {i: i for i in j}, [i async for i in j]]
del y[0], z.a
x += 1
global g
@dec(eval("1"))
async def f(a, /, b: int = 2, *c, d=exec, e: "T" = 3, **kw) -> list[int]:
    nonlocal h
    async with m() as (p, q), n:
        await r(lambda s=t(): u)
    async for v in w:
        yield v
        yield from x()
    return (yield)
class C(B, metaclass=M, k=eval):
    """doc"""
    async def g(self): ...
while a if b else c:
    break
else:
    continue
for i, *j in k:
    pass
try:
    raise E from F
except (E, F) as e:
    assert e, f"{e!r:>{w}} {x=}"
else:
    pass
finally:
    pass
try:
    pass
except* E:
    pass
with open(p) as fh:
    print(fh.read()[1:2:3], not a, -b, a < b <= c, a and b or c, (n := 10))
match command.split():
    case [action, *rest] if eval(action):
        pass
    case {"k": v, **others}:
        pass
    case Point(x=0, y=Y()) | None | 1 | "a" as point:
        pass
    case _:
        pass
'''


def _walked_by_the_table(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        singles, lists, unknown = _CHILD_FIELDS[type(node)]
        for name in singles:
            value = getattr(node, name, None)
            if type(value) in _WALKED:
                stack.append(value)
        for name in lists:
            stack.extend(item for item in getattr(node, name, ()) if type(item) in _WALKED)
        for name in unknown:
            value = getattr(node, name, None)
            for item in value if isinstance(value, list) else [value]:
                if type(item) in _WALKED:
                    stack.append(item)
    return out


def _sources() -> list[tuple[str, str]]:
    files = sorted(CORPUS.glob("*.py")) + sorted(SECURITY.glob("*.py"))
    return [("every-kind", EVERY_KIND)] + [(p.name, p.read_text()) for p in files]


@pytest.mark.parametrize(("name", "source"), _sources(), ids=[n for n, _ in _sources()])
def test_the_walk_reaches_every_node_ast_walk_reaches(name: str, source: str) -> None:
    tree = ast.parse(source)
    expected = sorted(id(n) for n in ast.walk(tree) if type(n) in _WALKED)
    assert sorted(id(n) for n in _walked_by_the_table(tree)) == expected, name


def test_signatures_were_read() -> None:
    """On this Python every class the parser makes has a readable signature: no field is left to
    the value-by-value fallback (a new Python that changes the docstrings keeps working, slower)."""
    assert _CHILD_FIELDS[ast.Call] == (("func",), ("args", "keywords"), ())
    assert all(not unknown for _, _, unknown in _CHILD_FIELDS.values())
