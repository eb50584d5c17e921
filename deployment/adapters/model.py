"""What the analyzer finds: adapters, their tools, and why a tool can or cannot migrate.

Plain dataclasses with ``to_dict`` for ``--json``; no analysis logic here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Generations of custom adapter (reference section 2).
COMMAND_HANDLER = "command_handler"
DYNAMIC_CALL_BRIDGE = "dynamic_call_bridge"
BASE_ADAPTER = "base_adapter"

# Why a tool is not a safe automatic migration, and what a person should do.
GUIDANCE: dict[str, str] = {
    "session_context": "reads or writes the session context; the generic adapter has no session. "
    "Keep this tool on the custom adapter, or have callers pass the values explicitly.",
    "adapter_state": "uses state kept on the adapter instance or class; generic calls are stateless. "
    "Keep it custom, or move the state out of the worker (e.g. into the session store).",
    "module_state": "uses module-level mutable state (a cache, registry or counter) living in the worker process. "
    "Keep it custom, or make the function pure and call it from a library module you own.",
    "io": "performs file or network I/O; the generic adapter blocks the usual file and network entry points "
    "and is never proposed for them. Keep it custom.",
    "pickle": "serialises or deserialises with a pickle-family module, which can run arbitrary code; "
    "the generic adapter blocks these functions. Keep it custom and replace pickle with JSON if you can.",
    "streaming": "streams results (yield / StreamChunk); the generic adapter returns one result per call. "
    "Keep it on the custom adapter.",
    "host_callback": "calls back into the Elixir host; the generic adapter cannot. Keep it custom.",
    "composite_logic": "is not one library call on its parameters (control flow, computed arguments, "
    "post-processing, helpers, constant answers). Move the logic into a function in a library module you own "
    "and map the tool to it, or keep it custom.",
    "dynamic_dispatch": "chooses what to run at run time (getattr, import by name, eval, a target argument); "
    "no fixed mapping exists. Callers can call the generic adapter's targets directly instead.",
}

REASON_ORDER = tuple(GUIDANCE)


@dataclass
class Param:
    """One parameter of a tool as callers see it."""

    name: str
    annotation: str | None = None
    default: Any = None
    required: bool = True
    default_source: str | None = None  # the default's source text when it is not a literal

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "annotation": self.annotation, "required": self.required}
        if not self.required:
            d["default"] = self.default if self.default_source is None else {"__expr__": self.default_source}
        return d


@dataclass
class Reason:
    """One reason a tool cannot migrate automatically, with the line that shows it."""

    category: str
    detail: str
    line: int
    source: str = ""

    @property
    def guidance(self) -> str:
        return GUIDANCE[self.category]

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "detail": self.detail,
            "line": self.line,
            "source": self.source,
            "guidance": self.guidance,
        }


@dataclass
class Mapping:
    """How a migratable tool becomes a generic call.

    ``args`` and ``kwargs`` hold ``{"param": name}`` or ``{"const": value}``
    in call order; ``wrap`` is a dict of constants with ``result_key`` holding
    the call's result (command handlers return ``{"status": "ok", "result": ...}``).
    """

    module: str
    function: str
    args: list[dict[str, Any]] = field(default_factory=list)
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    wrap: dict[str, Any] | None = None
    line: int = 0

    @property
    def target(self) -> str:
        return f"{self.module}.{self.function}"

    def constant_kwargs(self) -> dict[str, Any]:
        return {k: v["const"] for k, v in self.kwargs.items() if "const" in v}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "module": self.module,
            "function": self.function,
            "target": self.target,
            "args": self.args,
            "kwargs": self.kwargs,
            "constant_kwargs": self.constant_kwargs(),
            "line": self.line,
        }
        if self.wrap is not None:
            d["wrap"] = self.wrap
        return d


@dataclass
class Tool:
    """One tool of an adapter: how it is exposed, its signature, and its classification."""

    name: str
    exposure: str  # decorator | register_command | if_chain | handler | getattr
    function: str  # the Python function that implements it (``Class.method``)
    line: int
    params: list[Param] = field(default_factory=list)
    description: str = ""
    streaming: bool = False
    is_async: bool = False
    mapping: Mapping | None = None
    reasons: list[Reason] = field(default_factory=list)

    @property
    def migratable(self) -> bool:
        return self.mapping is not None and not self.reasons

    def categories(self) -> set[str]:
        return {r.category for r in self.reasons}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "exposure": self.exposure,
            "function": self.function,
            "line": self.line,
            "params": [p.to_dict() for p in self.params],
            "description": self.description,
            "streaming": self.streaming,
            "async": self.is_async,
            "migratable": self.migratable,
            "mapping": self.mapping.to_dict() if self.migratable and self.mapping else None,
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass
class Adapter:
    """One adapter class and the tools callers can reach on it."""

    name: str
    generation: str
    path: str  # file, relative to the analyzed root
    module: str  # dotted module name, importable from the report's import_root
    line: int
    tools: list[Tool] = field(default_factory=list)
    thread_safe: bool = False
    notes: list[str] = field(default_factory=list)

    def tool(self, name: str) -> Tool:
        for t in self.tools:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "generation": self.generation,
            "path": self.path,
            "module": self.module,
            "line": self.line,
            "thread_safe": self.thread_safe,
            "notes": self.notes,
            "tools": [t.to_dict() for t in self.tools],
        }


@dataclass
class AnalysisReport:
    """Everything found under one path."""

    root: str
    adapters: list[Adapter] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    import_root: str = ""  # the directory the adapters' modules import from

    def adapter(self, name: str) -> Adapter:
        for a in self.adapters:
            if a.name == name:
                return a
        raise KeyError(name)

    def summary(self) -> dict[str, int]:
        tools = [t for a in self.adapters for t in a.tools]
        return {
            "adapters": len(self.adapters),
            "tools": len(tools),
            "migratable": sum(t.migratable for t in tools),
            "custom": sum(not t.migratable for t in tools),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "import_root": self.import_root,
            "files": self.files,
            "summary": self.summary(),
            "adapters": [a.to_dict() for a in self.adapters],
        }
