"""AST rules for Python source: one pass over the tree, dispatching by node type.

The walk records imports, alias assignments and calls; calls are judged after the walk, once every
alias in the file is known (`e = eval` may come after a function that calls `e`). Name resolution
is per file and flow-insensitive: a name bound to several things is judged for each of them.
No regular expressions are used.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rpops.steps.security.names import (
    is_high_entropy_secret,
    is_secret_name,
    is_security_name,
    shannon_entropy,
)

RULES_VERSION = "3"  # bump when a rule changes, so that cached results are recomputed


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str  # default severity; a finding may carry another
    description: str
    bandit: tuple[str, ...]
    cwe: int


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "py-eval",
            "Dynamic code execution",
            "high",
            "eval(), exec() or compile(..., 'exec'), also reached through aliases such as "
            "`from builtins import eval as e`, `e = eval` or `getattr(builtins, 'eval')`.",
            ("B307", "B102"),
            95,
        ),
        Rule(
            "py-subprocess-shell",
            "Subprocess with a shell",
            "high",
            "A subprocess call with shell=True (also via **{'shell': True}), or a function that always "
            "runs a shell (subprocess.getoutput, asyncio.create_subprocess_shell).",
            ("B602", "B604"),
            78,
        ),
        Rule(
            "py-os-system",
            "os.system / os.popen",
            "high",
            "os.system and os.popen run their argument through a shell.",
            ("B605",),
            78,
        ),
        Rule(
            "py-deserialization",
            "Unsafe deserialization",
            "medium",
            "pickle, marshal, shelve (and dill, jsonpickle, pandas.read_pickle) loads run code from "
            "their input.",
            ("B301", "B302"),
            502,
        ),
        Rule(
            "py-yaml-load",
            "yaml.load without a safe loader",
            "medium",
            "yaml.load/load_all without SafeLoader/CSafeLoader/BaseLoader, and yaml.unsafe_load.",
            ("B506",),
            502,
        ),
        Rule(
            "py-hardcoded-secret",
            "Hard-coded secret",
            "high",
            "A high-entropy string literal assigned to a secret-like name (variable, attribute, "
            "dict key, keyword argument or parameter default).",
            ("B105", "B106", "B107"),
            798,
        ),
        Rule(
            "py-http-no-timeout",
            "HTTP request without a timeout",
            "medium",
            "requests calls without timeout= (requests waits forever by default), and requests or "
            "httpx calls with timeout=None. httpx calls without timeout= are not reported: httpx "
            "applies a 5 s default.",
            ("B113",),
            400,
        ),
        Rule(
            "py-tls-verify-disabled",
            "TLS verification disabled",
            "high",
            "verify=False on an HTTP client call.",
            ("B501",),
            295,
        ),
        Rule(
            "py-tempfile-mktemp",
            "tempfile.mktemp",
            "medium",
            "tempfile.mktemp returns a name that another process can create first.",
            ("B306",),
            377,
        ),
        Rule(
            "py-bind-all-interfaces",
            "Binding to all interfaces",
            "medium",
            "'0.0.0.0' (or '::') used as the host of a server, bind() call, host-like keyword, "
            "parameter default, assignment or dict entry.",
            ("B104",),
            605,
        ),
        Rule(
            "py-sql-string-format",
            "SQL built by string formatting",
            "medium",
            "An SQL statement built with %, +, .format() or an f-string instead of query parameters.",
            ("B608",),
            89,
        ),
        Rule(
            "py-jinja2-autoescape",
            "Jinja2 with autoescape off",
            "high",
            "jinja2.Environment without autoescape (its default is off) or with autoescape=False; "
            "jinja2.Template without autoescape=True.",
            ("B701",),
            79,
        ),
        Rule(
            "py-assert-security",
            "assert used for a security decision",
            "low",
            "An assert whose condition checks authentication or authorization; asserts are removed "
            "under python -O. Test files are not checked.",
            ("B101",),
            703,
        ),
    )
}

# One raw finding: (rule, line, col (1-based), end_line, end_col, message, severity, confidence).
RawFinding = tuple[str, int, int, int, int, str, str, str]

_BUILTIN_NAMES = frozenset({"eval", "exec", "compile", "getattr", "__import__", "open"})
_SUBPROCESS = frozenset(
    {
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.run",
        "subprocess.Popen",
    }
)
_ALWAYS_SHELL = frozenset(
    {
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_shell",
        "commands.getoutput",
        "commands.getstatusoutput",
    }
)
_OS_SHELL = frozenset(
    {
        "os.system",
        "os.popen",
        "posix.system",
        "posix.popen",
        "nt.system",
        "os.popen2",
        "os.popen3",
        "os.popen4",
        "popen2.popen2",
        "popen2.popen3",
        "popen2.popen4",
    }
)
_DESERIALIZE = frozenset(
    {
        "pickle.loads",
        "pickle.load",
        "pickle.Unpickler",
        "_pickle.loads",
        "_pickle.load",
        "_pickle.Unpickler",
        "cPickle.loads",
        "cPickle.load",
        "cPickle.Unpickler",
        "dill.loads",
        "dill.load",
        "marshal.loads",
        "marshal.load",
        "shelve.open",
        "shelve.DbfilenameShelf",
        "jsonpickle.decode",
        "pandas.read_pickle",
    }
)
_YAML_LOAD = frozenset({"yaml.load", "yaml.load_all"})
_YAML_UNSAFE = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all"})
_YAML_SAFE_LOADERS = frozenset(
    {
        "yaml.SafeLoader",
        "yaml.CSafeLoader",
        "yaml.BaseLoader",
        "yaml.CBaseLoader",
        "yaml.loader.SafeLoader",
        "yaml.loader.BaseLoader",
        "yaml.cyaml.CSafeLoader",
        "yaml.cyaml.CBaseLoader",
    }
)
_HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"})
_REQUESTS_SESSIONS = ("requests.Session()", "requests.session()", "requests.sessions.Session()")
_HTTPX_CLIENTS = ("httpx.Client", "httpx.AsyncClient")
_TLS_MODULES = frozenset({"requests", "httpx", "aiohttp", "urllib3"})
_MKTEMP = frozenset({"tempfile.mktemp", "os.tempnam", "os.tmpnam"})
_JINJA_ENV = frozenset(
    {"jinja2.Environment", "jinja2.environment.Environment", "jinja2.sandbox.SandboxedEnvironment"}
)
_JINJA_TEMPLATE = frozenset({"jinja2.Template", "jinja2.environment.Template"})
_ANY_ADDR = frozenset({"0.0.0.0", "::"})  # noqa: S104 - these are what the rule looks for
_HOST_KEYWORDS = frozenset(
    {
        "host",
        "hostname",
        "bind",
        "bind_address",
        "bind_addr",
        "address",
        "addr",
        "listen",
        "listen_address",
        "interface",
        "ip",
        "server_name",
        "server_host",
    }
)
_HOST_NAMES = _HOST_KEYWORDS | {"bind_host", "listen_host", "server", "server_address", "default_host"}
_SERVER_CALLS = frozenset(
    {
        "bind",
        "listen",
        "run",
        "serve",
        "run_simple",
        "make_server",
        "create_server",
        "start_server",
        "HTTPServer",
        "ThreadingHTTPServer",
        "TCPServer",
        "UDPServer",
        "ThreadingTCPServer",
        "WSGIServer",
        "Server",
        "Config",
        "serve_forever",
    }
)
_SQL_SINKS = frozenset(
    {"execute", "executemany", "executescript", "raw", "text", "read_sql", "read_sql_query", "mogrify"}
)
_SKIP_FIELDS = frozenset({"ctx", "op", "ops", "type_ignores"})
# Nodes never worth visiting: no handler looks at them and they hold nothing that needs one.
_LEAF_TYPES = (
    ast.Constant,
    ast.Name,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
    ast.alias,
    ast.type_ignore,
)


def _all_node_types() -> list[type]:
    out: list[type] = []
    pending: list[type] = [ast.AST]
    while pending:
        cls = pending.pop()
        out.append(cls)
        pending.extend(cls.__subclasses__())
    return out


# Node classes to walk into.
_WALKED: frozenset[type] = frozenset(c for c in _all_node_types() if not issubclass(c, _LEAF_TYPES))
# ASDL types that never hold a node worth visiting.
_LEAF_ASDL = frozenset(
    {
        "identifier",
        "string",
        "int",
        "constant",
        "expr_context",
        "operator",
        "unaryop",
        "cmpop",
        "boolop",
        "alias",
        "type_ignore",
    }
)


def _child_fields(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(single-node fields, list fields, fields of unknown shape) of a node class.

    CPython documents each concrete class with its ASDL signature, e.g. `Call(expr func, expr*
    args, keyword* keywords)`: fields typed `identifier`, `int`, `expr_context`... never hold a
    node to visit, `T*` fields are lists. A class without a readable signature (another Python
    version) keeps every field, checked value by value.
    """
    fields = tuple(f for f in getattr(cls, "_fields", ()) if f not in _SKIP_FIELDS)
    doc = cls.__doc__ or ""
    types: dict[str, str] = {}
    if doc.startswith(cls.__name__ + "(") and doc.endswith(")") and "\n" not in doc:
        for part in doc[len(cls.__name__) + 1 : -1].split(","):
            words = part.split()
            if len(words) == 2:
                types[words[1]] = words[0]
    singles: list[str] = []
    lists: list[str] = []
    unknown: list[str] = []
    for name in fields:
        kind = types.get(name)
        if kind is None:
            unknown.append(name)
        elif kind.rstrip("*?") in _LEAF_ASDL:
            continue
        elif kind.endswith("*"):
            lists.append(name)
        else:
            singles.append(name)
    return tuple(singles), tuple(lists), tuple(unknown)


_CHILD_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    c: _child_fields(c) for c in _WALKED
}


def _leaf_names(*groups: Iterable[str]) -> frozenset[str]:
    return frozenset(q.rsplit(".", 1)[-1] for group in groups for q in group)


_INTERESTING_LEAVES = _leaf_names(
    (
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.getattr",
        "builtins.__import__",
        "importlib.import_module",
    ),
    _SUBPROCESS,
    _ALWAYS_SHELL,
    _OS_SHELL,
    _DESERIALIZE,
    _YAML_LOAD,
    _YAML_UNSAFE,
    _MKTEMP,
    _JINJA_ENV,
    _JINJA_TEMPLATE,
    _HTTPX_CLIENTS,
    (f"x.{m}" for m in _HTTP_METHODS),
)


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_truthy_const(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value)


def _is_false_const(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _keyword(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def _has_star_kwargs(call: ast.Call) -> bool:
    return any(kw.arg is None for kw in call.keywords)


def _sql_words_in_order(text: str) -> bool:
    """SELECT ... FROM, DELETE FROM, INSERT INTO, UPDATE ... SET: the statement shapes B608 knows."""
    lowered = text.lower()  # most texts name no statement at all: decided without the word split
    if (
        "select" not in lowered
        and "delete" not in lowered
        and "insert" not in lowered
        and "update" not in lowered
    ):
        return False
    cleaned = "".join(ch.lower() if ch.isalnum() or ch == "_" else " " for ch in text)
    words = cleaned.split()
    if not words:
        return False
    seen: set[str] = set()
    for i, word in enumerate(words):
        if word == "from" and ("select" in seen or (i > 0 and words[i - 1] == "delete")):
            return True
        if word == "into" and i > 0 and words[i - 1] == "insert":
            return True
        if word == "set" and "update" in seen:
            return True
        seen.add(word)
    return False


class FileScan:
    """Scan one parsed module. Create one per file; call `run()`."""

    def __init__(self, tree: ast.Module, is_test_file: bool = False) -> None:
        self.tree = tree
        self.is_test_file = is_test_file
        self.findings: list[RawFinding] = []
        # dotted name -> list of bound values: a str (already qualified) or an AST expression.
        self.aliases: dict[str, list[Any]] = {"__builtins__": ["builtins"]}
        self.shadowed: set[str] = set()  # builtin names rebound to something else in this file
        # Calls judged after the walk. A call whose name can only matter through an alias waits
        # under that name (or the root of its dotted path) until the walk has seen every binding.
        self.calls: list[ast.Call] = []
        self._calls_by_name: dict[str, list[ast.Call]] = {}
        self._calls_by_root: dict[tuple[str, str], list[ast.Call]] = {}
        self.classes: list[ast.ClassDef] = []
        self._safe_yaml_classes: set[str] | None = None  # computed when a yaml.load needs it
        self._methods: set[int] = set()
        self._skip: set[int] = set()
        self._sql_sinks: set[int] = set()
        self._resolving: set[str] = set()
        self._memo: dict[str, set[str]] = {}
        self._cycles = 0
        self._dotted_roots: set[str] = set()
        self._callees: dict[str, set[str]] = {}

    # ---- reporting -------------------------------------------------------------------------
    def report(
        self, rule: str, node: ast.AST, message: str, confidence: str = "high", severity: str | None = None
    ) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        end_line = getattr(node, "end_lineno", None) or line
        end_col = (getattr(node, "end_col_offset", None) or col - 1) + 1
        self.findings.append(
            (rule, line, col, end_line, end_col, message, severity or RULES[rule].severity, confidence)
        )

    # ---- walk ------------------------------------------------------------------------------
    def run(self) -> list[RawFinding]:
        # Hot loop (millions of nodes on a large tree): locals, type() set lookups, no isinstance.
        visit = _VISIT
        walked = _WALKED
        stack: list[Any] = [self.tree]
        pop = stack.pop
        push = stack.append
        while stack:
            node = pop()
            handler, singles, lists, unknown = visit[type(node)]
            if handler is not None:
                handler(self, node)
            for name in singles:
                value = getattr(node, name, None)
                if type(value) in walked:
                    push(value)
            for name in lists:
                for item in getattr(node, name, ()):
                    if type(item) in walked:
                        push(item)
            for name in unknown:
                value = getattr(node, name, None)
                if type(value) is list:
                    for item in value:
                        if type(item) in walked:
                            push(item)
                elif type(value) in walked:
                    push(value)
        self._memo.clear()  # answers given during the walk saw only part of the file's bindings
        self._dotted_roots = {key.split(".", 1)[0] for key in self.aliases if "." in key}
        # Every name a finding is about ends in one of _INTERESTING_LEAVES, so a call through a
        # name bound only to imported names or local definitions with other last parts cannot
        # lead to one; a dotted callee matters only when that exact path was bound.
        calls = self.calls
        for name, waiting in self._calls_by_name.items():
            values = self.aliases.get(name)
            if values is not None and any(
                not isinstance(v, str) or v.rsplit(".", 1)[-1] in _INTERESTING_LEAVES for v in values
            ):
                calls.extend(waiting)
        bound_paths = {(k.split(".", 1)[0], k.rsplit(".", 1)[1]) for k in self.aliases if "." in k}
        for root_and_leaf, waiting in self._calls_by_root.items():
            if root_and_leaf in bound_paths:
                calls.extend(waiting)
        for call in calls:
            self._judge_call(call)
        self.findings.sort(key=lambda f: (f[1], f[2], f[0]))
        return self.findings

    @property
    def safe_yaml_classes(self) -> set[str]:
        """Names of this file's classes that derive from a safe yaml loader."""
        if self._safe_yaml_classes is None:
            safe: set[str] = set()
            for _ in range(3):  # a safe loader's subclass's subclass is safe too
                for class_node in self.classes:
                    if any(
                        self._resolve(b) & _YAML_SAFE_LOADERS or _dotted(b) in safe for b in class_node.bases
                    ):
                        safe.add(class_node.name)
            self._safe_yaml_classes = safe
        return self._safe_yaml_classes

    # ---- binding handlers ----------------------------------------------------------------
    def on_import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self._bind(alias.asname, alias.name)
            else:
                top = alias.name.split(".")[0]
                self._bind(top, top)

    def on_import_from(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            for alias in node.names:
                self.shadowed.add(alias.asname or alias.name)
            return
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}")

    def _bind(self, name: str, value: Any) -> None:
        self.aliases.setdefault(name, []).append(value)
        if name in _BUILTIN_NAMES and not (isinstance(value, str) and value == f"builtins.{name}"):
            self.shadowed.add(name)

    def on_assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._assign_target(target, node.value)

    def on_ann_assign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign_target(node.target, node.value)

    def _assign_target(self, target: ast.AST, value: ast.AST) -> None:
        if type(target) is ast.Name:  # the common case, without the general path's lookups
            ident = target.id
            self._bind(ident, value)
            if type(value) is ast.Constant and type(value.value) is str:
                self._check_secret(ident, value)
                self._check_bind_literal(ident, value)
            return
        if isinstance(target, ast.Tuple | ast.List):
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self._assign_target(t, v)
            return
        name: str | None
        if isinstance(target, ast.Subscript):
            name = _const_str(target.slice)
            if name is not None:
                self._check_secret(name, value)
                self._check_bind_literal(name, value)
            return
        name = _dotted(target)
        if name is None:
            return
        self._bind(name, value)
        leaf = name.rsplit(".", 1)[-1]
        self._check_secret(leaf, value)
        self._check_bind_literal(leaf, value)

    def on_with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self._assign_target(item.optional_vars, item.context_expr)

    def on_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if id(node) not in self._methods:
            self._bind(node.name, f"<def {node.name}>")
        args = node.args
        positional = args.posonlyargs + args.args
        for arg, default in zip(
            positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
        ):
            self._check_secret(arg.arg, default)
            self._check_bind_literal(arg.arg, default)
        for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kw_default is not None:
                self._check_secret(arg.arg, kw_default)
                self._check_bind_literal(arg.arg, kw_default)

    def on_class(self, node: ast.ClassDef) -> None:
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._methods.add(id(stmt))
        self._bind(node.name, f"<class {node.name}>")
        if node.bases:
            self.classes.append(node)

    def on_dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            name = _const_str(key)
            if name is not None:
                self._check_secret(name, value)
                self._check_bind_literal(name, value)

    # ---- expression handlers ---------------------------------------------------------------
    def on_call(self, node: ast.Call) -> None:
        func = node.func
        root: ast.expr | None = None  # the start of a dotted callee (`a` in `a.b.c()`)
        if type(func) is ast.Attribute:
            leaf = func.attr
            text = func.value
            if leaf == "format" and type(text) is ast.Constant and type(text.value) is str:
                if _sql_words_in_order(text.value) and (node.args or node.keywords):
                    self._report_sql(node)
            if leaf in _SQL_SINKS and node.args:
                self._sql_sinks.add(id(node.args[0]))
            root = text
            while type(root) is ast.Attribute:
                root = root.value
        elif type(func) is ast.Name:
            leaf = func.id
        else:
            leaf = ""
        tls_off = False
        for kw in node.keywords:
            arg = kw.arg
            value = kw.value
            if arg is None or type(value) is not ast.Constant:
                continue
            if type(value.value) is str:
                self._check_secret(arg, value)
                if value.value in _ANY_ADDR and arg.lower() in _HOST_KEYWORDS:
                    self.report(
                        "py-bind-all-interfaces",
                        value,
                        f"{arg}={value.value!r} listens on all interfaces",
                        "medium",
                    )
            elif arg == "verify" and value.value is False:
                tls_off = True
        if leaf in _SERVER_CALLS and node.args:
            self._judge_bind(node.args[0], leaf)
        # Which calls are worth resolving after the walk (resolution is the costly part): a
        # name that could matter, a dotted path whose root is bound to something, a callee that
        # is not a plain name, or TLS turned off (its confidence depends on what is called).
        if tls_off or leaf in _INTERESTING_LEAVES or not leaf:
            self.calls.append(node)
        elif root is None:
            self._calls_by_name.setdefault(leaf, []).append(node)
        elif type(root) is ast.Name:
            self._calls_by_root.setdefault((root.id, leaf), []).append(node)

    def on_binop(self, node: ast.BinOp) -> None:
        if id(node) in self._skip:
            return
        if isinstance(node.op, ast.Mod):
            text = _const_str(node.left)
            if text is not None and _sql_words_in_order(text):
                self._report_sql(node)
        elif isinstance(node.op, ast.Add):
            parts: list[ast.AST] = []
            self._flatten_add(node, parts)
            texts = [p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)]
            dynamic = any(not isinstance(p, ast.Constant) for p in parts)
            if texts and dynamic and _sql_words_in_order(" ? ".join(texts)):
                self._report_sql(node)

    def _flatten_add(self, node: ast.AST, parts: list[ast.AST]) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            self._skip.add(id(node))
            self._flatten_add(node.left, parts)
            self._flatten_add(node.right, parts)
        else:
            parts.append(node)

    def on_joined_str(self, node: ast.JoinedStr) -> None:
        texts: list[str] = []
        dynamic = False
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                texts.append(value.value)
            else:
                dynamic = True
                texts.append(" ? ")
        if dynamic and _sql_words_in_order("".join(texts)):
            self._report_sql(node)

    def _report_sql(self, node: ast.AST) -> None:
        direct = id(node) in self._sql_sinks
        self.report(
            "py-sql-string-format",
            node,
            "SQL statement built by string formatting"
            + (" and executed" if direct else "")
            + "; pass values as query parameters",
            "high" if direct else "medium",
        )

    def on_assert(self, node: ast.Assert) -> None:
        if self.is_test_file:
            return
        for sub in ast.walk(node.test):
            ident = (
                sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
            )
            if ident is not None and is_security_name(ident):
                self.report(
                    "py-assert-security",
                    node,
                    f"assert checks '{ident}'; asserts are stripped under python -O, "
                    "raise an exception instead",
                    "medium",
                )
                return

    # ---- literal checks --------------------------------------------------------------------
    def _check_secret(self, name: str, value: ast.AST) -> None:
        text = _const_str(value)
        if text is None or len(text) < 8:
            return
        if is_secret_name(name) and is_high_entropy_secret(text):
            strong = len(text) >= 16 and shannon_entropy(text) >= 3.5
            self.report(
                "py-hardcoded-secret",
                value,
                f"high-entropy string literal assigned to '{name}'; load it from the environment "
                "or a secret store",
                "high" if strong else "medium",
            )

    def _check_bind_literal(self, name: str, value: ast.AST) -> None:
        text = _const_str(value)
        if text in _ANY_ADDR and name.lower() in _HOST_NAMES:
            self.report(
                "py-bind-all-interfaces", value, f"'{name}' binds to all interfaces ({text})", "medium"
            )

    # ---- name resolution -------------------------------------------------------------------
    def _resolve(self, node: ast.AST, depth: int = 0) -> set[str]:
        """Qualified names a Name/Attribute/Call expression may stand for ("subprocess.run",
        "builtins.eval", "requests.Session()")."""
        if depth > 8:
            return set()
        if isinstance(node, ast.Call):
            func = node.func
            inner = self._resolve(func, depth + 1)
            if "builtins.getattr" in inner and len(node.args) >= 2:
                attr = _const_str(node.args[1])
                if attr is not None:
                    return {f"{q}.{attr}" for q in self._resolve(node.args[0], depth + 1)}
                return set()
            if ("builtins.__import__" in inner or "importlib.import_module" in inner) and node.args:
                module = _const_str(node.args[0])
                return {module} if module else set()
            return {f"{q}()" for q in inner}
        dotted = _dotted(node)
        if dotted is None:
            if isinstance(node, ast.Attribute):
                return {f"{q}.{node.attr}" for q in self._resolve(node.value, depth + 1)}
            return set()
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            prefix = ".".join(parts[:i])
            values = self.aliases.get(prefix)
            if values is None:
                continue
            rest = parts[i:]
            bases = self._resolve_alias(prefix, values, depth)
            return {".".join([base, *rest]) for base in bases}
        if parts[0] in _BUILTIN_NAMES and parts[0] not in self.shadowed:
            return {"builtins." + dotted}
        return set()

    def _resolve_alias(self, prefix: str, values: list[Any], depth: int) -> set[str]:
        memo = self._memo.get(prefix)
        if memo is not None:
            return memo
        if prefix in self._resolving:
            self._cycles += 1
            return set()
        cycles_before = self._cycles
        self._resolving.add(prefix)
        try:
            out: set[str] = set()
            for value in values:
                out |= {value} if isinstance(value, str) else self._resolve(value, depth + 1)
        finally:
            self._resolving.discard(prefix)
        if self._cycles == cycles_before:  # a cycle makes the answer partial: do not remember it
            self._memo[prefix] = out
        return out

    # ---- call judgement (after the walk) ---------------------------------------------------
    def _judge_call(self, call: ast.Call) -> None:
        func = call.func
        if isinstance(func, ast.Attribute):
            # Only calls whose last name could matter, or whose dotted path was itself bound to
            # something (`self.run = subprocess.run`), are resolved.
            wanted = func.attr in _INTERESTING_LEAVES
            if not wanted:
                root = func.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                wanted = (
                    isinstance(root, ast.Name)
                    and root.id in self._dotted_roots
                    and (_dotted(func) in self.aliases)
                )
        elif isinstance(func, ast.Name):
            wanted = func.id in _INTERESTING_LEAVES or func.id in self.aliases
        else:
            wanted = True
        names = self._resolve_callee(func) if wanted else set()
        confidence = "high" if len(names) <= 1 else "medium"
        for q in names:
            self._judge_qualified(call, q, confidence)
        if call.keywords:
            self._judge_tls(call, names)

    def _resolve_callee(self, func: ast.expr) -> set[str]:
        """`_resolve` for a callee, remembered by its dotted path after the walk (many calls in a
        file go through the same `self.session.get`)."""
        dotted = _dotted(func)
        if dotted is None:
            return self._resolve(func)
        known = self._callees.get(dotted)
        if known is None:
            known = self._callees[dotted] = self._resolve(func)
        return known

    def _judge_qualified(self, call: ast.Call, q: str, confidence: str) -> None:
        if q in ("builtins.eval", "builtins.exec"):
            literal = bool(call.args) and isinstance(call.args[0], ast.Constant)
            self.report(
                "py-eval",
                call,
                f"{q.split('.')[1]}() runs code built at run time",
                "medium" if literal else confidence,
            )
        elif q == "builtins.compile":
            mode = call.args[2] if len(call.args) >= 3 else getattr(_keyword(call, "mode"), "value", None)
            if _const_str(mode) == "exec":
                self.report(
                    "py-eval", call, "compile(..., 'exec') prepares code for exec()", confidence, "medium"
                )
        elif q in _SUBPROCESS:
            self._judge_shell(call, q, confidence)
        elif q in _ALWAYS_SHELL:
            self.report(
                "py-subprocess-shell", call, f"{q} always runs its command through a shell", confidence
            )
        elif q in _OS_SHELL:
            self.report(
                "py-os-system",
                call,
                f"{q} runs its argument through a shell; use subprocess with an argument list",
                confidence,
            )
        elif q in _DESERIALIZE:
            self.report("py-deserialization", call, f"{q} can run arbitrary code from its input", confidence)
        elif q in _YAML_UNSAFE:
            self.report("py-yaml-load", call, f"{q} constructs arbitrary Python objects", confidence, "high")
        elif q in _YAML_LOAD:
            self._judge_yaml(call, q, confidence)
        elif q in _MKTEMP:
            self.report(
                "py-tempfile-mktemp",
                call,
                f"{q} is racy; use tempfile.mkstemp or NamedTemporaryFile",
                confidence,
            )
        elif q in _JINJA_ENV or q in _JINJA_TEMPLATE:
            self._judge_jinja(call, q, confidence)
        else:
            self._judge_timeout(call, q, confidence)

    def _judge_shell(self, call: ast.Call, q: str, confidence: str) -> None:
        for kw in call.keywords:
            if kw.arg == "shell":
                if _is_truthy_const(kw.value):
                    self.report("py-subprocess-shell", call, f"{q} with shell=True", confidence)
                elif not isinstance(kw.value, ast.Constant):
                    self.report(
                        "py-subprocess-shell",
                        call,
                        f"{q} with a shell= value computed at run time",
                        "low",
                        "medium",
                    )
                return
            if kw.arg is None and self._dict_sets_shell(kw.value):
                self.report(
                    "py-subprocess-shell", call, f"{q} with shell=True passed through **kwargs", confidence
                )
                return

    def _dict_sets_shell(self, node: ast.AST, depth: int = 0) -> bool:
        if depth > 4:
            return False
        if isinstance(node, ast.Dict):
            return any(
                _const_str(k) == "shell" and _is_truthy_const(v)
                for k, v in zip(node.keys, node.values, strict=True)
            )
        if isinstance(node, ast.Call) and _dotted(node.func) == "dict":
            return any(kw.arg == "shell" and _is_truthy_const(kw.value) for kw in node.keywords)
        dotted = _dotted(node)
        if dotted is not None:
            return any(
                not isinstance(v, str) and self._dict_sets_shell(v, depth + 1)
                for v in self.aliases.get(dotted, ())
            )
        return False

    def _judge_yaml(self, call: ast.Call, q: str, confidence: str) -> None:
        loader = getattr(_keyword(call, "Loader"), "value", None)
        if loader is None and len(call.args) >= 2:
            loader = call.args[1]
        if loader is None:
            if not _has_star_kwargs(call):
                self.report(
                    "py-yaml-load",
                    call,
                    f"{q} without Loader= uses an unsafe loader on old PyYAML; use yaml.safe_load",
                    confidence,
                )
            return
        resolved = self._resolve(loader)
        if resolved & _YAML_SAFE_LOADERS or _dotted(loader) in self.safe_yaml_classes:
            return
        known_unsafe = any(r.startswith("yaml.") for r in resolved)
        self.report(
            "py-yaml-load",
            call,
            f"{q} with a loader that is not a safe loader",
            confidence if known_unsafe else "low",
            "high" if known_unsafe else "medium",
        )

    def _judge_jinja(self, call: ast.Call, q: str, confidence: str) -> None:
        kw = _keyword(call, "autoescape")
        if kw is None:
            if _has_star_kwargs(call):
                return
            if q in _JINJA_TEMPLATE:
                self.report(
                    "py-jinja2-autoescape",
                    call,
                    f"{q} without autoescape=True does not escape HTML",
                    "medium",
                    "medium",
                )
            else:
                self.report(
                    "py-jinja2-autoescape",
                    call,
                    f"{q} without autoescape (off by default); use autoescape=select_autoescape()",
                    confidence,
                )
        elif _is_false_const(kw.value):
            self.report("py-jinja2-autoescape", call, f"{q} with autoescape=False", confidence)

    def _judge_timeout(self, call: ast.Call, q: str, confidence: str) -> None:
        module, _, method = q.rpartition(".")
        is_requests = (module == "requests" and method in _HTTP_METHODS - {"stream"}) or (
            module in _REQUESTS_SESSIONS and method in _HTTP_METHODS
        )
        is_httpx = (
            (module == "httpx" and method in _HTTP_METHODS)
            or q in ("httpx.Client", "httpx.AsyncClient")
            or any(module == f"{c}()" and method in _HTTP_METHODS for c in _HTTPX_CLIENTS)
        )
        if not (is_requests or is_httpx):
            return
        kw = _keyword(call, "timeout")
        if kw is not None:
            if isinstance(kw.value, ast.Constant) and kw.value.value is None:
                self.report("py-http-no-timeout", call, f"{q} with timeout=None waits forever", confidence)
            return
        if is_requests and not _has_star_kwargs(call):
            self.report(
                "py-http-no-timeout",
                call,
                f"{q} without timeout= can wait forever",
                confidence if module == "requests" else "medium",
            )

    def _judge_tls(self, call: ast.Call, names: set[str]) -> None:
        kw = _keyword(call, "verify")
        if kw is None or not _is_false_const(kw.value):
            return
        known = any(q.split(".")[0] in _TLS_MODULES for q in names)
        self.report(
            "py-tls-verify-disabled",
            kw.value,
            "verify=False turns off TLS certificate checks",
            "high" if known else "medium",
        )

    def _judge_bind(self, first: ast.AST, func_leaf: str) -> None:
        """The first positional argument of a server or bind() call."""
        if isinstance(first, ast.Tuple) and first.elts:
            first = first.elts[0]
        text = _const_str(first)
        if text in _ANY_ADDR:
            self.report(
                "py-bind-all-interfaces",
                first,
                f"{func_leaf}() on {text!r} listens on all interfaces",
                "high" if func_leaf == "bind" else "medium",
            )


_HANDLERS: dict[type, Any] = {
    ast.Import: FileScan.on_import,
    ast.ImportFrom: FileScan.on_import_from,
    ast.Assign: FileScan.on_assign,
    ast.AnnAssign: FileScan.on_ann_assign,
    ast.With: FileScan.on_with,
    ast.AsyncWith: FileScan.on_with,
    ast.FunctionDef: FileScan.on_function,
    ast.AsyncFunctionDef: FileScan.on_function,
    ast.ClassDef: FileScan.on_class,
    ast.Dict: FileScan.on_dict,
    ast.Call: FileScan.on_call,
    ast.BinOp: FileScan.on_binop,
    ast.JoinedStr: FileScan.on_joined_str,
    ast.Assert: FileScan.on_assert,
}


# For each walked class: its handler (or None) and its child fields, in one lookup per node.
_VISIT: dict[type, tuple[Any, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    c: (_HANDLERS.get(c), *_CHILD_FIELDS[c]) for c in _WALKED
}


def scan_tree(tree: ast.Module, is_test_file: bool = False) -> list[RawFinding]:
    return FileScan(tree, is_test_file).run()


def scan_source(
    source: bytes | str, filename: str = "<source>", is_test_file: bool = False
) -> list[RawFinding]:
    """Parse and scan; raises SyntaxError/ValueError/RecursionError for the caller to report."""
    tree = ast.parse(source, filename)
    return scan_tree(tree, is_test_file)


def rule_ids() -> Iterable[str]:
    return RULES.keys()
