"""Static analysis of custom adapters: every adapter class, every tool, and whether it can migrate.

Works on the AST only (see :mod:`deployment.adapters.source`); the analyzed
code is never imported or run.  Finds the three generations of adapter
(reference section 2) and every way a tool becomes reachable:
``register_command``, ``@tool``, ``self.handlers = {...}``,
``if tool_name == ...`` chains in ``execute_tool``, and the undecorated
methods that ``call_tool``'s ``getattr`` dispatch makes callable.
"""

from __future__ import annotations

import ast
import os

from deployment.adapters.discovery import ToolFinder
from deployment.adapters.errors import AdapterSourceError, NoAdapterFound
from deployment.adapters.hierarchy import ClassTable, Method, decorator_name
from deployment.adapters.model import BASE_ADAPTER, COMMAND_HANDLER, Adapter, AnalysisReport
from deployment.adapters.source import ModuleIndex, discover, import_root, literal, parse_file

BASE_ADAPTER_NAMES = frozenset({"BaseAdapter", "ThreadSafeAdapter", "BaseAdapterThreaded", "ThreadedBaseAdapter"})
COMMAND_HANDLER_NAMES = frozenset({"BaseCommandHandler"})


def analyze_path(path: str | os.PathLike[str]) -> AnalysisReport:
    """Analyze a Python file or package directory; raises :class:`NoAdapterFound` when it holds no adapter."""
    root, files = discover(path)
    indexes = [parse_file(root, f) for f in files]
    classes = ClassTable(indexes)
    report = AnalysisReport(root=str(path), files=[ix.rel for ix in indexes], import_root=str(import_root(root)))
    for ix in indexes:
        for cls in ix.classes.values():
            try:
                adapter = _analyze_class(cls, ix, classes)
            except RecursionError:
                raise AdapterSourceError(
                    str(ix.path), f"class {cls.name} has a chain of bases too deep to follow", line=cls.lineno,
                    hint="the analyzer follows a few hundred levels of inheritance; this looks generated or hostile",
                ) from None
            if adapter is not None:
                report.adapters.append(adapter)
    if not report.adapters:
        raise NoAdapterFound(
            f"{path}: no adapter class found in {len(files)} file(s)",
            hint="an adapter derives from BaseCommandHandler (0.1-0.3) or snakepit_bridge's BaseAdapter (0.4+)",
        )
    return report


def _analyze_class(cls: ast.ClassDef, ix: ModuleIndex, classes: ClassTable) -> Adapter | None:
    if cls.name in COMMAND_HANDLER_NAMES | BASE_ADAPTER_NAMES:
        return None  # a vendored copy of the bridge's own base class is not an adapter
    bases = classes.base_names(cls, ix)
    methods = classes.methods(cls, ix)
    if bases & COMMAND_HANDLER_NAMES or "_register_commands" in {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}:
        generation = COMMAND_HANDLER
    elif bases & BASE_ADAPTER_NAMES:
        generation = BASE_ADAPTER
    else:
        return None
    adapter = Adapter(cls.name, generation, ix.rel, ix.module, cls.lineno, thread_safe=_thread_safe(cls, methods))
    builder = ToolFinder(adapter, cls, ix, classes, methods)
    if generation == COMMAND_HANDLER:
        builder.command_handler_tools()
    else:
        builder.base_adapter_tools()
    return adapter


def _thread_safe(cls: ast.ClassDef, methods: dict[str, Method]) -> bool:
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__thread_safe__" for t in node.targets):
            return literal(node.value) == (True, True)
    return any(decorator_name(d) == "thread_safe_method" for m in methods.values() for d in m.fn.decorator_list)
