"""Reading adapter source safely and indexing what each module binds.

Source is read as bytes, decoded, and parsed with :func:`ast.parse`; nothing
is imported or executed.  Every way a file can be unusable (missing, binary,
too large, malformed, nested past the parser's limits) becomes an
:class:`AdapterSourceError` naming the file and, when known, the line.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployment.adapters.errors import AdapterSourceError

MAX_FILE_BYTES = 2_000_000
MAX_FILES = 2_000
BUILTIN_NAMES = frozenset(dir(builtins))
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".tox", "build", "dist"}


@dataclass
class ModuleIndex:
    """One parsed file and the names its top level binds."""

    path: Path
    rel: str
    module: str
    tree: ast.Module
    lines: list[str]
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted origin
    local_imports: set[str] = field(default_factory=set)  # names imported relatively (from the package itself)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    mutable: dict[str, int] = field(default_factory=dict)  # name -> line of first binding

    def text(self, line: int) -> str:
        """The stripped source of one line (for evidence)."""
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""


def discover(path: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """The root and the ``.py`` files to analyze under ``path`` (a file or a directory)."""
    root = Path(path)
    if not root.exists():
        raise AdapterSourceError(str(path), "no such file or directory", hint="check the path")
    if not root.is_dir() and not root.is_file():
        raise AdapterSourceError(str(path), "not a regular file or directory (a device, FIFO or socket?)")
    if root.is_file():
        if root.suffix != ".py":
            raise AdapterSourceError(str(path), "not a Python source file (expected a .py file or a directory)")
        return root, [root]
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py") and (Path(dirpath) / name).is_file():  # no FIFOs, devices, dangling links
                files.append(Path(dirpath) / name)
                if len(files) > MAX_FILES:
                    raise AdapterSourceError(
                        str(path), f"more than {MAX_FILES} Python files", hint="point at the adapter package itself"
                    )
    if not files:
        raise AdapterSourceError(str(path), "directory holds no .py files")
    return root, files


def import_root(root: Path) -> Path:
    """The directory a worker has on ``sys.path`` to import what is under ``root``.

    Above a file or a package, up through every directory that is itself a
    package (has ``__init__.py``); a plain directory of modules is its own root.
    """
    root = Path(os.path.abspath(root))  # not resolve(): a symlinked file stays where it was found
    d = root.parent if root.is_file() or (root / "__init__.py").exists() else root
    while (d / "__init__.py").exists() and d.parent != d:
        d = d.parent
    return d


def module_name(root: Path, file: Path) -> str:
    """The dotted name ``file`` is imported as, with :func:`import_root` of ``root`` on ``sys.path``."""
    parts = list(Path(os.path.abspath(file)).relative_to(import_root(root)).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def parse_file(root: Path, file: Path) -> ModuleIndex:
    """Read, decode and parse one file, then index its top-level bindings."""
    shown = str(file)
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded even if the file grows while it is read
    except OSError as exc:
        raise AdapterSourceError(shown, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise AdapterSourceError(shown, f"file is larger than the {MAX_FILE_BYTES} byte limit")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise AdapterSourceError(shown, f"not decodable source text ({exc})") from None
    if "\x00" in text:
        raise AdapterSourceError(shown, "contains NUL bytes: this is not Python source")
    try:
        tree = ast.parse(text, filename=shown)
    except SyntaxError as exc:
        raise AdapterSourceError(shown, f"syntax error: {exc.msg}", line=exc.lineno) from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise AdapterSourceError(shown, f"cannot be parsed ({type(exc).__name__}: nested or sized past the parser's limits)") from None
    rel = file.name if root.is_file() else str(file.relative_to(root))
    index = ModuleIndex(file, rel, module_name(root, file), tree, text.splitlines())
    _index_top_level(index)
    return index


def literal(node: ast.AST | None) -> tuple[bool, Any]:
    """``(True, value)`` when ``node`` is a literal (``ast.literal_eval`` accepts it)."""
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False, None


_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), tuple, frozenset)


def _index_top_level(index: ModuleIndex) -> None:
    package = index.module.rsplit(".", 1)[0] if "." in index.module else ""
    assigned: dict[str, list[ast.AST]] = {}
    for node in index.tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    index.imports[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    index.imports[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*parts, base] if p)
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                index.imports[local] = f"{base}.{alias.name}" if base else alias.name
                if node.level:
                    index.local_imports.add(local)
        elif isinstance(node, ast.ClassDef):
            index.classes[node.name] = node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            index.functions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in _bound_names(target):
                    assigned.setdefault(name, []).append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            # Conditional imports and bindings: record imports, treat other names as state.
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    for alias in sub.names:
                        index.imports.setdefault(alias.asname or alias.name.split(".")[0], alias.name if alias.asname else alias.name.split(".")[0])
                elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                    for alias in sub.names:
                        index.imports.setdefault(alias.asname or alias.name, f"{sub.module}.{alias.name}")
                elif isinstance(sub, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    for target in sub.targets if isinstance(sub, ast.Assign) else [sub.target]:
                        for name in _bound_names(target):
                            index.mutable.setdefault(name, sub.lineno)
    rebound = _names_declared_global(index.tree)
    for name, nodes in assigned.items():
        node = nodes[0]
        value = getattr(node, "value", None)
        ok, val = literal(value)
        if (
            len(nodes) == 1
            and not isinstance(node, ast.AugAssign)
            and ok
            and isinstance(val, _IMMUTABLE)
            and name not in rebound
            and name not in index.mutable
        ):
            index.constants[name] = val
        else:
            index.mutable.setdefault(name, node.lineno)
    for name, line in rebound.items():
        index.mutable.setdefault(name, line)


def _bound_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _bound_names(elt)]
    return []


def _names_declared_global(tree: ast.Module) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            for name in node.names:
                found.setdefault(name, node.lineno)
    return found
