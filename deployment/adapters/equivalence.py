"""Scientist-style equivalence: the custom tool and its generic mapping on the same inputs.

Each migratable tool with an alias in the generic configuration is run
through the custom adapter and through the generic adapter, each side in its
own subprocess (:mod:`deployment.adapters.sandbox`) with a timeout and
``resource`` limits.  Outcomes are compared: JSON values exactly, floats
within ``rel_tol``/``abs_tol``, exceptions by type and message.  Inputs come
from a samples JSONL file, recorded traffic JSONL (the fleet's
``{"tool", "arguments", "result"}`` lines) and hypothesis-generated values
for the parameter annotations.  One mismatch keeps a tool on the custom
adapter unless the user accepts it; the result is a mixed configuration.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployment.adapters import casegen
from deployment.adapters.casegen import generate_cases, with_observed_types
from deployment.adapters.errors import SamplesParseError
from deployment.adapters.generic import GenericConfig
from deployment.adapters.model import AnalysisReport, Tool

SANDBOX = Path(__file__).with_name("sandbox.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Limits:
    """What one sandboxed side may use."""

    timeout: float = 30.0  # wall-clock seconds for all of a tool's cases on one side
    memory_mb: int = 1024
    file_size_mb: int = 16
    python: str = sys.executable  # the interpreter the custom adapter runs under


@dataclass
class Tolerance:
    """How close two floats must be to count as equal."""

    rel: float = 1e-9
    abs: float = 1e-12


@dataclass
class ToolVerdict:
    """The outcome of verifying one tool."""

    tool: str
    adapter: str
    status: str  # equivalent | accepted | mismatch | not_reproduced | error | no_cases | not_migratable | not_in_config | unknown_tool
    decision: str  # generic | custom
    cases: int = 0
    matches: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    first_mismatch: dict[str, Any] | None = None
    detail: str = ""
    # Recorded calls whose production result the custom adapter, run here, reproduced.
    recorded: dict[str, int] = field(default_factory=dict)
    recorded_mismatch: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "adapter": self.adapter,
            "status": self.status,
            "decision": self.decision,
            "cases": self.cases,
            "matches": self.matches,
            "sources": self.sources,
            "first_mismatch": self.first_mismatch,
            "recorded": self.recorded,
            "recorded_mismatch": self.recorded_mismatch,
            "detail": self.detail,
        }


@dataclass
class EquivalenceReport:
    """Per tool verdicts, the tolerance used, and the verified (possibly mixed) configuration."""

    tools: list[ToolVerdict]
    tolerance: Tolerance
    config: dict[str, Any]  # the verified (possibly mixed) generic configuration

    @property
    def ok(self) -> bool:
        """True when every aliased tool ended on the generic adapter (equivalent or accepted)."""
        return all(v.decision == "generic" for v in self.tools if v.status != "not_in_config")

    def verdict(self, tool: str) -> ToolVerdict:
        return next(v for v in self.tools if v.tool == tool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": {"rel": self.tolerance.rel, "abs": self.tolerance.abs},
            "summary": {s: sum(v.status == s for v in self.tools) for s in sorted({v.status for v in self.tools})},
            "tools": [v.to_dict() for v in self.tools],
            "config": self.config,
        }


# -- inputs ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One line of a samples or traffic file: a call, and its result when it was recorded."""

    tool: str
    arguments: dict[str, Any]
    result: Any = None
    has_result: bool = False


def read_records(path: str | os.PathLike[str]) -> list[Recorded]:
    """The calls in a JSONL file of ``{"tool": ..., "arguments": {...}[, "result": ...]}`` lines."""
    shown = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SamplesParseError(shown, 0, f"cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SamplesParseError(shown, 0, "not UTF-8 text") from None
    out: list[Recorded] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SamplesParseError(shown, n, f"not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise SamplesParseError(shown, n, "JSON nested too deeply to read") from None
        if not isinstance(obj, dict):
            raise SamplesParseError(shown, n, "not a JSON object")
        tool = obj.get("tool", obj.get("tool_name"))
        arguments = obj.get("arguments", obj.get("args", {}))
        if not isinstance(tool, str) or not tool:
            raise SamplesParseError(shown, n, "missing 'tool' (a non-empty string)")
        if not isinstance(arguments, dict):
            raise SamplesParseError(shown, n, "'arguments' must be a JSON object")
        out.append(Recorded(tool, arguments, obj.get("result"), "result" in obj))
    return out


def read_cases(path: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """Arguments per tool from a samples or traffic JSONL file."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in read_records(path):
        out.setdefault(rec.tool, []).append(rec.arguments)
    return out


def replay(
    records: list[Recorded], call: Callable[[str, dict[str, Any]], Any], tolerance: Tolerance = Tolerance()
) -> list[ToolVerdict]:
    """Replay recorded calls through ``call(tool, arguments)`` and compare with the recorded results.

    For checking a live fleet after a rollout: ``call`` sends one request
    to it.  Records without a result are skipped; a call that raises is a
    mismatch (the recorder keeps only calls that succeeded).
    """
    verdicts: dict[str, ToolVerdict] = {}
    for rec in records:
        if not rec.has_result:
            continue
        v = verdicts.setdefault(rec.tool, ToolVerdict(rec.tool, "", "equivalent", "generic", sources={"traffic": 0}))
        v.cases += 1
        v.sources["traffic"] += 1
        try:
            got: dict[str, Any] = {"ok": True, "value": call(rec.tool, rec.arguments)}
        except Exception as exc:
            got = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
        if same_outcome({"ok": True, "value": rec.result}, got, tolerance):
            v.matches += 1
        elif v.first_mismatch is None:
            v.first_mismatch = {"arguments": rec.arguments, "recorded": rec.result, "replayed": got}
            v.status, v.decision = "mismatch", "custom"
    for v in verdicts.values():
        if v.first_mismatch is not None:
            v.detail = f"{v.cases - v.matches} of {v.cases} recorded calls answered differently"
    return list(verdicts.values())


# -- comparison -----------------------------------------------------------------------------


def same(a: Any, b: Any, tol: Tolerance = Tolerance()) -> bool:
    """JSON values equal, floats within tolerance (int and float are different JSON)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=tol.rel, abs_tol=tol.abs)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def same_outcome(custom: dict[str, Any], generic: dict[str, Any], tol: Tolerance) -> bool:
    """Both returned equal values, or both raised the same exception type with the same message."""
    if custom["ok"] != generic["ok"]:
        return False
    if custom["ok"]:
        return same(custom["value"], generic["value"], tol)
    return custom["error"] == generic["error"]


# -- sandboxed runs -------------------------------------------------------------------------


def _limit(limits: Limits):
    def apply() -> None:
        mem = limits.memory_mb * 1024 * 1024
        cpu = int(limits.timeout) + 1
        for which, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, limits.file_size_mb * 1024 * 1024), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass
    return apply


class _Side:
    """One running sandbox process."""

    def __init__(self, python: str, request: dict[str, Any], limits: Limits) -> None:
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(PROJECT_ROOT), env.get("PYTHONPATH", "")] if p)
        self.limits = limits
        self.proc = subprocess.Popen(
            [python, str(SANDBOX)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=_limit(limits),
            start_new_session=True,
        )
        self.payload = json.dumps(request).encode()

    def result(self) -> dict[str, Any]:
        """The side's answer, or ``{"failure": why}`` when it timed out, crashed or could not load."""
        try:
            out, err = self.proc.communicate(self.payload, timeout=self.limits.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
            return {"failure": f"timed out after {self.limits.timeout:g}s"}
        if self.proc.returncode != 0 or not out.strip():
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            how = f"killed by signal {-self.proc.returncode}" if self.proc.returncode < 0 else f"exit code {self.proc.returncode}"
            return {"failure": f"sandbox {how} (resource limit or crash) {tail[0][:200]}".strip()}
        try:
            answer = json.loads(out.decode().strip().splitlines()[-1])
        except (json.JSONDecodeError, UnicodeDecodeError, IndexError):
            return {"failure": "sandbox answered something that is not JSON"}
        if "load_error" in answer:
            e = answer["load_error"]
            return {"failure": f"cannot load: {e['type']}: {e['message']}"}
        return answer


# -- the check ------------------------------------------------------------------------------


def verify(
    report: AnalysisReport,
    config: dict[str, Any],
    *,
    samples: dict[str, list[dict[str, Any]]] | None = None,
    traffic: list[Recorded] | None = None,
    examples: int = 50,
    accept: set[str] | frozenset[str] = frozenset(),
    tolerance: Tolerance = Tolerance(),
    limits: Limits = Limits(),
) -> EquivalenceReport:
    """Compare every aliased tool of ``config`` with the custom tool it replaces.

    Recorded traffic adds its calls as cases, and where a call's production
    result was recorded, the custom adapter run here must reproduce it: else
    the check is not running in the environment production runs in.
    """
    parsed = GenericConfig.parse(config)
    samples, traffic = samples or {}, traffic or []
    found: dict[str, tuple[Any, Tool]] = {}
    for adapter in report.adapters:
        for tool in adapter.tools:
            found.setdefault(tool.name, (adapter, tool))
    verdicts: list[ToolVerdict] = []
    jobs: list[tuple[ToolVerdict, Any, Tool, list[dict[str, Any]], dict[str, Any]]] = []
    for name in parsed.aliases:
        wanted = config["tool_aliases"][name].get("adapter")
        hit = next(((a, t) for a in report.adapters if a.name == wanted for t in a.tools if t.name == name), None) or found.get(name)
        if hit is None:
            verdicts.append(ToolVerdict(name, str(wanted or ""), "unknown_tool", "custom",
                                        detail="no custom tool of this name was found to compare with"))
            continue
        adapter, tool = hit
        verdict = ToolVerdict(tool.name, adapter.name, "equivalent", "generic")
        verdicts.append(verdict)
        cases, results = _cases(verdict, tool, samples, traffic, examples)  # hypothesis runs here, in one thread
        if cases:
            jobs.append((verdict, adapter, tool, cases, results))
    # Each tool's two sides run in their own processes; two tools at a time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda job: _run_sides(report, config, job[1], job[2], job[3], limits), jobs))
    for (verdict, _, tool, cases, results), (custom, generic) in zip(jobs, answers):
        _judge(verdict, tool, cases, results, custom, generic, accept, tolerance)
    for name, (adapter, tool) in found.items():
        if tool.migratable and name not in parsed.aliases:
            verdicts.append(ToolVerdict(name, adapter.name, "not_in_config", "custom",
                                        detail="migratable, but the generic config has no alias for it"))
    return EquivalenceReport(verdicts, tolerance, _mixed(config, verdicts))


def _cases(verdict: ToolVerdict, tool: Tool, samples, traffic: list[Recorded], examples: int
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A tool's distinct inputs (samples, traffic, generated) and the recorded results by input."""
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    recorded = [r for r in traffic if r.tool == tool.name]
    results = {}
    for r in recorded:
        if r.has_result:
            results.setdefault(_key(r.arguments), r.result)
    observed = [*samples.get(tool.name, []), *(r.arguments for r in recorded)]
    params = with_observed_types(tool.params, observed)
    for source, given in (("samples", samples.get(tool.name, [])), ("traffic", [r.arguments for r in recorded]),
                          ("generated", generate_cases(params, examples) if examples else [])):
        added = 0
        for arguments in given:
            key = _key(arguments)
            if key not in seen:
                seen.add(key)
                cases.append(arguments)
                added += 1
        verdict.sources[source] = added
    verdict.cases = len(cases)
    if not cases:
        verdict.status, verdict.decision = "no_cases", "custom"
        verdict.detail = "no samples, no recorded traffic, and " + (
            "no annotations to generate inputs from" if casegen.available() else "hypothesis is not installed to generate inputs")
    return cases, results


def _run_sides(report: AnalysisReport, config: dict[str, Any], adapter: Any, tool: Tool,
               cases: list[dict[str, Any]], limits: Limits) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' answers for the cases, each from its own sandboxed process, run at the same time."""
    root = report.import_root
    custom_req = {"side": "custom", "root": root, "module": adapter.module, "adapter": adapter.name,
                  "generation": "base_adapter" if adapter.generation == "base_adapter" else "command_handler",
                  "function": tool.function, "tool": tool.name, "cases": cases}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="generic-") as fh:
        json.dump(config, fh)
        fh.flush()
        generic_req = {"side": "generic", "root": root, "config_path": fh.name, "tool": tool.name, "cases": cases}
        custom_side = _Side(limits.python, custom_req, limits)
        generic_side = _Side(sys.executable, generic_req, limits)
        return custom_side.result(), generic_side.result()


def _judge(verdict: ToolVerdict, tool: Tool, cases: list[dict[str, Any]], results: dict[str, Any],
           custom: dict[str, Any], generic: dict[str, Any], accept, tol: Tolerance) -> None:
    """Compare the answers and decide where the tool goes."""
    failure = custom.get("failure") and f"custom adapter: {custom['failure']}" or generic.get("failure") and f"generic adapter: {generic['failure']}"
    if failure:
        verdict.status, verdict.decision, verdict.detail = "error", "custom", failure
        return
    for arguments, c, g in zip(cases, custom["outcomes"], generic["outcomes"]):
        if same_outcome(c, g, tol):
            verdict.matches += 1
        elif verdict.first_mismatch is None:
            verdict.first_mismatch = {"arguments": arguments, "custom": c, "generic": g}
    verdict.recorded = {"cases": 0, "matches": 0}
    for arguments, c in zip(cases, custom["outcomes"]):
        if _key(arguments) not in results:
            continue
        verdict.recorded["cases"] += 1
        if same_outcome({"ok": True, "value": results[_key(arguments)]}, c, tol):
            verdict.recorded["matches"] += 1
        elif verdict.recorded_mismatch is None:
            verdict.recorded_mismatch = {"arguments": arguments, "recorded": results[_key(arguments)], "custom": c}
    if verdict.first_mismatch is not None or verdict.recorded_mismatch is not None:
        if tool.name in accept:
            verdict.status, verdict.detail = "accepted", "mismatches accepted by the user"
        elif verdict.first_mismatch is not None:
            verdict.status, verdict.decision = "mismatch", "custom"
            verdict.detail = f"{verdict.cases - verdict.matches} of {verdict.cases} cases differ; the tool stays custom"
        else:
            r = verdict.recorded
            verdict.status, verdict.decision = "not_reproduced", "custom"
            verdict.detail = (f"the custom adapter run here answers {r['cases'] - r['matches']} of {r['cases']} recorded "
                              "calls differently than production did: this check does not run in production's "
                              "environment (library versions?); the tool stays custom")
    elif not tool.migratable:
        verdict.status, verdict.decision = "not_migratable", "custom"
        verdict.detail = "results matched, but the analyzer found " + ", ".join(
            f"{r.category} (line {r.line})" for r in tool.reasons) + "; equal outputs do not prove equal effects"


def _key(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, default=repr)


def _mixed(config: dict[str, Any], verdicts: list[ToolVerdict]) -> dict[str, Any]:
    mixed = copy.deepcopy(config)
    custom = mixed.setdefault("custom_tools", {})
    for v in verdicts:
        if v.decision == "custom" and v.tool in mixed.get("tool_aliases", {}):
            del mixed["tool_aliases"][v.tool]
            custom[v.tool] = {"adapter": v.adapter, "reasons": [f"equivalence:{v.status}"]}
    return mixed
