"""Each type's figures and findings, read from its real result model (pure)."""

from __future__ import annotations

from deployment.audit.figures import figures_of, findings_of
from deployment.audit.report import build_report, render_report
from workflows.adapter_models import AdapterMigrationResult, AnalysisSummary, ReplaySummary, ToolCheck, ToolSummary, VerifySummary
from workflows.fleet_models import InstanceOutcome, RollingRestartResult


def test_a_rolling_restart_shows_its_instances_and_the_one_that_failed():
    r = RollingRestartResult(
        migration_id="rr", status="rolled_back", fleet="http://front:9000", config_version="0.10", restarted=2,
        instances=[InstanceOutcome(id="w1", to_version="0.10", outcome="rolled_back"),
                   InstanceOutcome(id="w2", to_version="0.10", outcome="rolled_back"),
                   InstanceOutcome(id="w3", to_version="0.10", outcome="failed")],
        rolled_back=["w1", "w2"], failed_instance="w3", error="w3 did not become healthy", duration_s=12.5,
    )  # fmt: skip
    found = figures_of("RollingRestart", r.model_dump())
    assert found == {"fleet": "http://front:9000", "config version": "0.10", "instances": 3, "restarted": 2,
                     "returned to previous config": 2, "failed instance": "w3", "duration (s)": 12.5}  # fmt: skip
    assert findings_of("RollingRestart", r.model_dump()) == ["instance w1: rolled_back", "instance w2: rolled_back", "instance w3: failed"]


def test_an_adapter_migration_shows_its_tools_checks_and_replay():
    tools = [ToolSummary(name=n, adapter="a", migratable=n != "shell") for n in ("echo", "sum", "shell")]
    r = AdapterMigrationResult(
        migration_id="ad", status="completed", path="/srv/adapter.py", fleet="http://front:9000", config_path="/etc/pool.json",
        analysis=AnalysisSummary(adapters=["a"], tools=tools, migratable=2, custom=1),
        verification=VerifySummary(ok=True, tools=[], generic_tools=["echo", "sum"], custom_tools=["shell"], config_digest="d"),
        replay=ReplaySummary(ok=False, replayed=40, matched=39, tools=[ToolCheck(tool="sum", status="mismatch", decision="custom",
                                                                                 detail="1 of 20 differ")]),
        duration_s=30.0,
    )  # fmt: skip
    found = figures_of("AdapterMigration", r.model_dump())
    assert (found["tools analyzed"], found["migratable"], found["kept custom"], found["generic tools"]) == (3, 2, 1, 2)
    assert (found["equivalence"], found["calls replayed"], found["calls matched"]) == ("yes", 40, 39)
    assert findings_of("AdapterMigration", r.model_dump()) == ["tool shell stays custom", "replay of sum: mismatch 1 of 20 differ"]
    report = build_report({"migration_id": "ad", "type": "AdapterMigration", "status": "completed", "result": r.model_dump()}, [], True)
    md = render_report(report, "md")
    assert "| calls matched | 39 |" in md and "| 2 | replay of sum: mismatch 1 of 20 differ |" in md
    assert "sessions copied" not in md and "Integrity" not in md  # nothing of a session migration
