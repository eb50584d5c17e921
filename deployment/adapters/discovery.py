"""Finding the tools of one adapter class, by every way a caller can reach them.

Command handlers: each ``register_command("name", handler)``, and the
branches of an overridden ``process_command``.  BaseAdapter: what
``execute_tool`` dispatches itself (``if``/``match`` on the tool name, a table
of methods; first, since they run before anything else), tools of handler
objects in ``self.handlers``, ``@tool`` methods, and the methods ``getattr``
dispatch makes reachable (``call_tool``, ``super().execute_tool``, or a name
prefix such as ``f"tool_{name}"``).  Each tool is classified by
:func:`deployment.adapters.classify.classify`.
"""

from __future__ import annotations

import ast

from deployment.adapters.classify import Classification, classify
from deployment.adapters.evidence import FRAMEWORK_METHODS
from deployment.adapters.hierarchy import ClassTable, Func, Method, decorator_name, terminal
from deployment.adapters.model import DYNAMIC_CALL_BRIDGE, Adapter, Reason, Tool
from deployment.adapters.scope import Scope, signature_params
from deployment.adapters.source import ModuleIndex, literal

BRIDGE_COMPANIONS = frozenset({"store", "retrieve", "list_stored", "delete_stored", "pipeline", "inspect"})
CONTEXT_PARAMS = frozenset({"ctx", "context", "session_context", "session"})
PASSTHROUGH_DECORATORS = frozenset({"tool", "thread_safe_method", "staticmethod", "classmethod"})


class ToolFinder:
    """Collects the tools of one adapter class into its :class:`Adapter`."""

    def __init__(self, adapter: Adapter, cls: ast.ClassDef, ix: ModuleIndex, classes: ClassTable, methods: dict[str, Method]):
        self.adapter = adapter
        self.cls = cls
        self.ix = ix
        self.classes = classes
        self.methods = methods
        self.seen: dict[str, Tool] = {}

    # -- shared -------------------------------------------------------------------------

    def add(self, tool: Tool) -> None:
        """Record a tool; a second exposure of the same name is only noted (the dispatcher reaches the first)."""
        if tool.name in self.seen:
            first = self.seen[tool.name]
            if first.function != tool.function:
                self.adapter.notes.append(
                    f"tool {tool.name!r} is also exposed by {tool.function} (line {tool.line}) via {tool.exposure}; "
                    f"the dispatcher reaches {first.function} first"
                )
            return
        self.seen[tool.name] = tool
        self.adapter.tools.append(tool)

    def scope(self, method: Method, **kw) -> Scope:
        """What ``method``'s body can see, with its own class's methods."""
        own = any(m.fn is method.fn for m in self.methods.values())
        methods = self.methods if own else self._methods_of(method.owner, method.index)
        return Scope(
            index=method.index,
            qualname=f"{method.owner}.{method.fn.name}",
            class_methods=frozenset(methods),
            class_names=frozenset({method.owner, self.cls.name}),
            **kw,
        )

    def _methods_of(self, owner: str, ix: ModuleIndex) -> dict[str, Method]:
        hit = self.classes.find(owner, ix)
        return self.classes.methods(hit[1], hit[0]) if hit else {}

    def method_tool(self, name: str, exposure: str, method: Method, *, handler_object: bool = False) -> Tool:
        """A tool implemented by a method whose signature gives the parameters."""
        fn = method.fn
        static = any(decorator_name(d) == "staticmethod" for d in fn.decorator_list)
        skip = 0 if static else 1
        ctx_param = None
        positional = [*fn.args.posonlyargs, *fn.args.args]
        if handler_object and len(positional) > skip and positional[skip].arg in CONTEXT_PARAMS:
            ctx_param = positional[skip].arg
            skip += 1
        params, _ = signature_params(fn, skip)
        meta = _tool_meta(fn)
        extra = self._decorator_reasons(fn, method.index)
        if meta.get("streaming"):
            extra.append(Reason("streaming", "declared supports_streaming=True", meta["line"], method.index.text(meta["line"])))
        if meta.get("required_variables"):
            extra.append(Reason("session_context", f"requires session variables {meta['required_variables']}", meta["line"], method.index.text(meta["line"])))
        scope = self.scope(method, params=params, ctx_param=ctx_param, self_name=None if static else positional[0].arg if positional else None)
        result = classify(fn, scope, extra=extra)
        return _tool(name, exposure, scope.qualname, fn, fn.lineno, result, meta.get("description") or _doc_line(fn))

    def _decorator_reasons(self, fn: Func, ix: ModuleIndex) -> list[Reason]:
        out = []
        for dec in fn.decorator_list:
            name = decorator_name(dec) or ast.unparse(dec)
            if name in PASSTHROUGH_DECORATORS:
                continue
            category = "module_state" if "cache" in name.lower() or "memo" in name.lower() else "composite_logic"
            out.append(Reason(category, f"wrapped by decorator @{ast.unparse(dec)[:60]}", dec.lineno, ix.text(dec.lineno)))
        return out

    # -- command handlers (0.1-0.3) and the dynamic-call bridge ------------------------

    def command_handler_tools(self) -> None:
        """Every ``register_command`` of the class; marks a dynamic-call bridge."""
        for method in self.methods.values():
            for node in ast.walk(method.fn):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register_command"
                    and len(node.args) >= 2
                ):
                    continue
                name_node, handler = node.args[0], node.args[1]
                if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
                    self.adapter.notes.append(
                        f"line {node.lineno}: a command is registered under a computed name "
                        f"({ast.unparse(name_node)[:60]}); it cannot be listed statically"
                    )
                    continue
                self.add(self.command_tool(name_node.value, handler, method, node))
        process = self.methods.get("process_command")
        if process is not None:
            self.process_command_tools(process)
        names = set(self.seen)
        if "call" in names and (names & BRIDGE_COMPANIONS or any(p.name == "target" for p in self.seen["call"].params)):
            self.adapter.generation = DYNAMIC_CALL_BRIDGE
            call = self.seen["call"]
            if "dynamic_dispatch" not in call.categories():
                call.reasons.insert(0, Reason("dynamic_dispatch", "takes its target from the request", call.line, ""))
            call.mapping = None
            self.adapter.notes.append(
                "dynamic-call bridge: callers of `call` with a library target can call the generic adapter with the "
                "same target directly; targets `stored.<id>.<method>` depend on stored objects and stay custom"
            )

    def process_command_tools(self, process: Method) -> None:
        """Commands an overridden ``process_command`` dispatches itself with if/match on the command name."""
        fn = process.fn
        positional = _positional(fn)
        if len(positional) < 3:
            return
        command_param, args_param = positional[1], positional[2]
        for name, body, line in _branches(fn, command_param):
            handler = _hands_off(body, args_param)
            if handler is not None and handler in self.methods:
                self.add(self.handler_function_tool(name, self.methods[handler], exposure="process_command"))
                continue
            scope = self.scope(process, args_dict=args_param)
            result = classify(fn, scope, body=body)
            self.add(_tool(name, "process_command", f"{process.owner}.process_command", fn, line, result, ""))

    def command_tool(self, name: str, handler: ast.expr, registrar: Method, call: ast.Call) -> Tool:
        """The tool one ``register_command(name, handler)`` call registers."""
        if isinstance(handler, ast.Attribute) and isinstance(handler.value, ast.Name) and handler.value.id == "self":
            method = self.methods.get(handler.attr)
            if method is not None:
                return self.handler_function_tool(name, method, exposure="register_command")
        elif isinstance(handler, ast.Name) and handler.id in registrar.index.functions:
            fn = registrar.index.functions[handler.id]
            return self.handler_function_tool(name, Method(fn, registrar.index, "<module>"), exposure="register_command", bound=False)
        reason = Reason(
            "dynamic_dispatch" if not isinstance(handler, ast.Lambda) else "composite_logic",
            f"handler `{ast.unparse(handler)[:60]}` cannot be resolved statically" if not isinstance(handler, ast.Lambda) else "handler is a lambda",
            call.lineno,
            registrar.index.text(call.lineno),
        )
        return Tool(name, "register_command", ast.unparse(handler)[:60], call.lineno, reasons=[reason])

    def handler_function_tool(self, name: str, method: Method, *, exposure: str, bound: bool = True) -> Tool:
        """A command handler taking one ``args`` dict; parameters are the keys it reads."""
        fn = method.fn
        positional = [*fn.args.posonlyargs, *fn.args.args]
        dict_param = positional[1 if bound else 0].arg if len(positional) > (1 if bound else 0) else None
        scope = self.scope(method, args_dict=dict_param or "args", self_name=positional[0].arg if bound and positional else None)
        if not bound:
            scope.qualname = fn.name
        result = classify(fn, scope, extra=self._decorator_reasons(fn, method.index))
        return _tool(name, exposure, scope.qualname, fn, fn.lineno, result, _doc_line(fn))

    # -- BaseAdapter (0.4+) -------------------------------------------------------------

    def base_adapter_tools(self) -> None:
        """Every tool of a BaseAdapter class, in the order its dispatch reaches them."""
        execute = self.methods.get("execute_tool")
        if execute is not None:
            self.if_chain_tools(execute)
        self.handler_object_tools()
        for name, method in self.methods.items():
            if any(decorator_name(d) == "tool" for d in method.fn.decorator_list):
                self.add(self.method_tool(name, "decorator", method))
        pattern = ("", "") if execute is None else _getattr_dispatch(execute.fn)
        if pattern is None:
            return
        prefix, suffix = pattern
        how = "inherited call_tool" if execute is None else f"execute_tool (line {execute.fn.lineno})"
        private = []
        for name, method in self.methods.items():
            tool_name = name[len(prefix): len(name) - len(suffix)]
            if not (name.startswith(prefix) and name.endswith(suffix) and tool_name):
                continue
            if tool_name in self.seen or name in FRAMEWORK_METHODS or name.startswith("__"):
                continue
            if not prefix and name.startswith("_"):
                private.append(name)
                continue
            self.add(self.method_tool(tool_name, "getattr", method))
        if private:
            self.adapter.notes.append(
                f"private methods {', '.join(sorted(private))} are also reachable through getattr dispatch in {how}; "
                "they are not proposed for migration"
            )

    def if_chain_tools(self, execute: Method) -> None:
        """Tools named in ``execute_tool`` by ``if tool_name == ...``, ``match tool_name``, or a dict of methods."""
        fn = execute.fn
        positional = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
        if len(positional) < 3:
            return
        name_param, args_param = positional[1], positional[2]
        ctx_param = positional[3] if len(positional) > 3 else None
        for tool_name, body, line in _branches(fn, name_param):
            delegate = self._delegate(body, args_param)
            if delegate is not None:
                tool = self.method_tool(tool_name, "if_chain", delegate)
            else:
                scope = self.scope(execute, args_dict=args_param, ctx_param=ctx_param)
                result = classify(fn, scope, body=body)
                tool = _tool(tool_name, "if_chain", f"{execute.owner}.execute_tool", fn, line, result, "")
            self.add(tool)
        for tool_name, attr in _dispatch_table(fn, name_param):
            method = self.methods.get(attr)
            if method is not None:
                self.add(self.method_tool(tool_name, "dispatch_table", method))

    def _delegate(self, body: list[ast.stmt], args_param: str) -> Method | None:
        """The method a branch hands off to with ``return self.m(**arguments)``."""
        if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
            return None
        call = body[0].value
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "self"
            and not call.args
            and len(call.keywords) == 1
            and call.keywords[0].arg is None
            and isinstance(call.keywords[0].value, ast.Name)
            and call.keywords[0].value.id == args_param
        ):
            return self.methods.get(func.attr)
        return None

    def handler_object_tools(self) -> None:
        """Tools exposed through the handler objects of ``self.handlers = {...}``."""
        for method in self.methods.values():
            for node in ast.walk(method.fn):
                if not (
                    isinstance(node, ast.Assign)
                    and any(_is_self_attr(t, "handlers") for t in node.targets)
                    and isinstance(node.value, ast.Dict)
                ):
                    continue
                for key, value in zip(node.value.keys, node.value.values):
                    self._handler_entry(key, value, method)

    def _handler_entry(self, key: ast.expr | None, value: ast.expr, where: Method) -> None:
        key_name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "self" and key_name:
            method = self.methods.get(value.attr)
            if method is not None:
                self.add(self.method_tool(key_name, "handler", method))
                return
        if isinstance(value, ast.Call) and terminal(value.func):
            hit = self.classes.find(terminal(value.func), where.index)  # type: ignore[arg-type]
            if hit is not None:
                self._handler_class_tools(*hit)
                return
        if isinstance(value, ast.Name) and value.id in where.index.functions and key_name:
            fn = where.index.functions[value.id]
            self.add(self.method_tool(key_name, "handler", Method(fn, where.index, "<module>")))
            return
        self.adapter.notes.append(
            f"line {value.lineno}: handler {ast.unparse(value)[:60]} is not defined in the analyzed source; its tools cannot be listed"
        )

    def _handler_class_tools(self, hix: ModuleIndex, hcls: ast.ClassDef) -> None:
        hmethods = self.classes.methods(hcls, hix)
        listed = _get_tools_dict(hmethods.get("get_tools"))
        if listed is None:
            listed = {n: n for n in hmethods if not n.startswith("_") and n not in FRAMEWORK_METHODS}
        for tool_name, method_name in listed.items():
            method = hmethods.get(method_name)
            if method is None:
                continue
            self.add(self.method_tool(tool_name, f"handler:{hcls.name}", method, handler_object=True))


def _tool(name: str, exposure: str, qualname: str, fn: Func, line: int, result: Classification, description: str) -> Tool:
    return Tool(
        name=name,
        exposure=exposure,
        function=qualname,
        line=line,
        params=result.params,
        description=description,
        streaming=any(r.category == "streaming" for r in result.reasons),
        is_async=isinstance(fn, ast.AsyncFunctionDef),
        mapping=result.mapping,
        reasons=result.reasons,
    )


def _get_tools_dict(method: Method | None) -> dict[str, str] | None:
    """``{"name": Tool(self.m)}`` or ``{"name": self.m}`` returned by a handler's ``get_tools``."""
    if method is None:
        return None
    for node in ast.walk(method.fn):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            out = {}
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(v, ast.Call) and v.args:
                    v = v.args[0]
                if isinstance(k, ast.Constant) and isinstance(k.value, str) and _is_self_attr(v):
                    out[k.value] = v.attr  # type: ignore[union-attr]
            return out
    return None


def _is_self_attr(node: ast.AST, attr: str | None = None) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and (attr is None or node.attr == attr)
    )


def _compared_names(test: ast.expr, name_param: str) -> list[str]:
    """Tool names an ``if`` test selects: ``tool_name == "x"`` (either way round) or ``tool_name in ("x", "y")``."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return []
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if isinstance(op, ast.Eq) and isinstance(right, ast.Name) and right.id == name_param:
        left, right = right, left
    if not (isinstance(left, ast.Name) and left.id == name_param):
        return []
    if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, str):
        return [right.value]
    if isinstance(op, ast.In) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _case_names(pattern: ast.pattern) -> list[str]:
    """Tool names a ``case`` pattern selects: ``case "x":`` or ``case "x" | "y":``."""
    if isinstance(pattern, ast.MatchValue) and isinstance(pattern.value, ast.Constant) and isinstance(pattern.value.value, str):
        return [pattern.value.value]
    if isinstance(pattern, ast.MatchOr):
        return [n for p in pattern.patterns for n in _case_names(p)]
    return []


def _branches(fn: Func, name_param: str) -> list[tuple[str, list[ast.stmt], int]]:
    """``(tool name, branch body, line)`` for every if-test and match-case on the tool name."""
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.If):
            found += [(name, node.body, node.lineno) for name in _compared_names(node.test, name_param)]
        elif isinstance(node, ast.Match) and isinstance(node.subject, ast.Name) and node.subject.id == name_param:
            for case in node.cases:
                # A guard is logic of its own: it joins the body that is classified.
                guard = [ast.copy_location(ast.Expr(case.guard), case.guard)] if case.guard is not None else []
                found += [(name, [*guard, *case.body], case.pattern.lineno) for name in _case_names(case.pattern)]
    return found


def _dispatch_table(fn: Func, name_param: str) -> list[tuple[str, str]]:
    """``(tool name, method)`` of a ``{"x": self.m, ...}`` dict that ``execute_tool`` indexes by the tool name."""
    indexed = any(
        (isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Name) and n.slice.id == name_param)
        or (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" and n.args
            and isinstance(n.args[0], ast.Name) and n.args[0].id == name_param)
        for n in ast.walk(fn)
    )
    if not indexed:
        return []
    return [
        (k.value, v.attr)  # type: ignore[union-attr]
        for node in ast.walk(fn) if isinstance(node, ast.Dict)
        for k, v in zip(node.keys, node.values)
        if isinstance(k, ast.Constant) and isinstance(k.value, str) and _is_self_attr(v)
    ]


def _getattr_dispatch(fn: Func) -> tuple[str, str] | None:
    """How ``execute_tool`` reaches methods by name: ``(prefix, suffix)`` around the tool name, or ``None``.

    ``self.call_tool(tool_name, ...)``, ``getattr(self, tool_name)`` and
    ``super().execute_tool(...)`` reach any method (``("", "")``);
    ``getattr(self, f"tool_{tool_name}")`` reaches ``tool_*`` methods by their suffix.
    """
    name_param = _positional(fn)[1] if len(_positional(fn)) > 1 else None
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "execute_tool" and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "super"):
            return "", ""
        if _is_self_attr(func, "call_tool") and node.args:
            return _name_pattern(node.args[0], name_param)
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2 \
                and isinstance(node.args[0], ast.Name) and node.args[0].id == "self":
            return _name_pattern(node.args[1], name_param)
    return None


def _hands_off(body: list[ast.stmt], args_param: str) -> str | None:
    """The method a branch hands the whole args dict to: ``return self.handle_x(args)``."""
    if len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call):
        call = body[0].value
        if (_is_self_attr(call.func) and len(call.args) == 1 and not call.keywords
                and isinstance(call.args[0], ast.Name) and call.args[0].id == args_param):
            return call.func.attr  # type: ignore[union-attr]
    return None


def _positional(fn: Func) -> list[str]:
    return [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]


def _name_pattern(expr: ast.expr, name_param: str | None) -> tuple[str, str]:
    """``(prefix, suffix)`` when ``expr`` is ``f"pre{tool_name}suf"`` or ``"pre" + tool_name``; else any name."""
    parts: list[ast.expr] = []
    if isinstance(expr, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None else v
                 for v in expr.values]
    elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        parts = [expr.left, expr.right]
    names = [i for i, p in enumerate(parts) if isinstance(p, ast.Name) and p.id == name_param]
    consts = [p for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)]
    if len(names) != 1 or len(consts) != len(parts) - 1:
        return "", ""
    i = names[0]
    return "".join(p.value for p in parts[:i]), "".join(p.value for p in parts[i + 1:])  # type: ignore[union-attr]


def _tool_meta(fn: Func) -> dict:
    for dec in fn.decorator_list:
        if decorator_name(dec) != "tool":
            continue
        meta: dict = {"line": dec.lineno}
        if isinstance(dec, ast.Call):
            if dec.args:
                ok, value = literal(dec.args[0])
                if ok and isinstance(value, str):
                    meta["description"] = value
            for kw in dec.keywords:
                ok, value = literal(kw.value)
                if kw.arg == "description" and ok:
                    meta["description"] = value
                elif kw.arg == "supports_streaming":
                    meta["streaming"] = bool(value) if ok else True
                elif kw.arg == "required_variables" and (not ok or value):
                    meta["required_variables"] = value if ok else ast.unparse(kw.value)
        return meta
    return {}


def _doc_line(fn: Func) -> str:
    doc = ast.get_docstring(fn)
    return doc.strip().splitlines()[0] if doc else ""
