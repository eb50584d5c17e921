"""Property tests: random valid old configs convert to valid new ones; mutated files never crash the parser."""

from __future__ import annotations

import string

from tests.deployment.config.config_corpus import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployment.config.documents import load_document
from deployment.config.errors import ConfigParseError
from deployment.config.exs import parse_exs
from deployment.config.plan import check_unit, load_unit, plan_unit
from deployment.config.schemas import VERSIONS
from deployment.config.validate import is_valid, validate
from deployment.config.values import Atom, Keywords, Module, Opaque, _key_text, render, same
from deployment.errors import MigrateError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(alphabet=string.ascii_letters + string.digits + ' _-.#{}"\\', max_size=12)
ints = st.integers(min_value=0, max_value=100_000)
pos = st.integers(min_value=1, max_value=512)
atoms = lambda *names: st.sampled_from([Atom(n) for n in names])  # noqa: E731
opaque = st.sampled_from([Opaque("System.schedulers_online() * 2"), Opaque('String.to_integer(System.get_env("N", "4"))')])


def some(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """A map with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


def kw(**fields: st.SearchStrategy) -> st.SearchStrategy[Keywords]:
    return some(**fields).map(Keywords)


TIMEOUTS = {k: ints for k in ("pool_startup_timeout", "pool_queue_timeout", "worker_init_timeout", "cleanup_retry_interval")}

v03 = some(
    pooling_enabled=st.booleans(),
    adapter_module=st.sampled_from([Module(f"Snakepit.Adapters.{n}") for n in ("GenericPython", "GenericPythonV2", "EnhancedPython")]),
    wire_protocol=atoms("auto", "json", "msgpack"),
    pool_config=some(pool_size=pos | opaque, adapter_args=st.lists(texts, max_size=3)),
    cleanup_max_retries=ints,
    **TIMEOUTS,
)

v05 = some(
    pooling_enabled=st.booleans(),
    adapter_module=st.just(Module("Snakepit.Adapters.GRPCPython")),
    grpc_port=st.integers(0, 65535),
    grpc_host=texts,
    grpc_config=some(base_port=st.integers(0, 65535), port_range=pos),
    pool_config=some(pool_size=pos | opaque, adapter_args=st.lists(texts, max_size=3), startup_batch_size=pos, max_workers=pos),
    python_adapter=st.sampled_from(["my_app.adapters:ML", "a.b:C"]),
    session_default_ttl=ints,
    **TIMEOUTS,
)

pool_spec = some(
    worker_profile=atoms("process", "thread"), pool_size=pos | opaque, threads_per_worker=pos,
    adapter_module=st.just(Module("Snakepit.Adapters.GRPCPython")), heartbeat=some(interval_ms=pos, enabled=st.booleans()),
)
pools = st.lists(pool_spec, min_size=1, max_size=3).map(lambda ps: [{"name": Atom(f"pool{i}"), **p} for i, p in enumerate(ps)])

v06 = some(
    pools=pools,
    pool_size=pos,
    heartbeat=some(enabled=st.booleans(), interval_ms=pos, timeout_ms=pos),
    log_level=atoms("debug", "info", "warning", "error", "none"),
    session_store=some(default_ttl=ints, cleanup_interval=pos, max_sessions=pos, strict_mode=st.booleans()),
    grpc_port=st.integers(0, 65535),
    python_runtime=some(strategy=atoms("venv", "system", "uv"), python_version=st.sampled_from(["3.11", "3.12"])),
    **TIMEOUTS,
)

v07 = st.tuples(v06, some(
    capacity_strategy=atoms("pool", "profile", "hybrid"),
    python_packages=kw(packages=st.lists(st.sampled_from(["numpy", "torch"]), max_size=2), installer=atoms("pip", "uv")),
    python=kw(strategy=atoms("system", "uv"), managed=st.booleans()),
    log_categories=st.dictionaries(st.sampled_from(["pool", "grpc", "session"]), atoms("debug", "info"), min_size=1),
    cleanup_retry_interval_ms=ints,
)).map(lambda parts: {k: v for k, v in {**parts[0], **parts[1]}.items() if k not in ("cleanup_retry_interval", "python_runtime")})

v08 = st.tuples(v07, some(
    log_categories=st.lists(atoms("pool", "grpc", "session"), max_size=3),
    timeout_profile=atoms("balanced", "production", "batch"),
    python_packages=kw(packages=st.lists(st.sampled_from(["numpy", "torch"]), max_size=2)),
    grpc_host=texts,
)).map(lambda parts: {**{k: v for k, v in parts[0].items() if k not in ("log_categories", "python_packages")}, **parts[1]})

v010 = st.tuples(v08, some(
    grpc_listener=st.sampled_from([{"mode": Atom("internal")}, {"mode": Atom("external"), "host": "h", "port": 50051}]),
    instance_name=texts,
    affinity=atoms("hint", "strict_queue", "strict_fail_fast"),
    pool_config=some(pool_size=pos),
    pool_reconcile_interval_ms=ints,
)).map(lambda parts: {k: v for k, v in {**parts[0], **parts[1]}.items() if k not in ("grpc_port", "grpc_host")})

ERAS = {"0.3": v03, "0.5": v05, "0.6": v06, "0.7": v07, "0.8": v08, "0.10": v010}


def elixir(cfg: dict, style: str) -> bytes:
    """A config script that sets ``cfg``: one pair a line, all on one line, or one call per key."""
    if not cfg:
        return b"import Config\n"
    if style == "inline":
        body = ", ".join(f"{_key_text(k)} {render(v, 0, width=10_000)}" for k, v in cfg.items())
        return f"import Config\nconfig :snakepit, {body}\n".encode()
    if style == "calls":
        return ("import Config\n" + "".join(f"config :snakepit, {_key_text(k)} {render(v, 0)}\n# next\n" for k, v in cfg.items())).encode()
    items = list(cfg.items())
    body = "\n".join(f"  {_key_text(k)} {render(v, 2, column=3 + len(k))}{',' if i < len(items) - 1 else ''} # {k}" for i, (k, v) in enumerate(items))
    return f"import Config\n\n# generated\nconfig :snakepit,\n{body}\n".encode()


@FAST
@given(st.sampled_from(sorted(ERAS)).flatmap(lambda era: st.tuples(st.just(era), ERAS[era])), st.sampled_from(["multi", "inline", "calls"]))
def test_random_valid_old_configs_convert_to_valid_new_ones(case: tuple[str, dict], style: str) -> None:
    era, cfg = case
    assert is_valid(validate(cfg, era, elixir=True)), validate(cfg, era)
    source = elixir(cfg, style)
    assert same(parse_exs(source).config(), cfg)
    for target in VERSIONS[VERSIONS.index(era) + 1:]:
        plan = plan_unit(load_unit([("config.exs", source)]), target, era)
        assert plan.valid, (target, [i.text() for i in plan.issues if i.severity == "error"], plan.diff())
        after = plan.files[0].after
        converted = parse_exs(after).config()
        if style == "multi":  # a setting the conversion left alone keeps its line, comment included
            for key, value in cfg.items():
                if key in converted and same(converted[key], value) and "\n" not in render(value, 2, column=3 + len(key)):
                    assert f"{_key_text(key)} {render(value, 2, column=3 + len(key))}".encode() in after
                    assert f"# {key}\n".encode() in after
        again = plan_unit(load_unit([("config.exs", after)]), target, target)
        assert not again.changed, again.diff()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, byte in edits:
        if not buf:
            buf.append(byte)
            continue
        pos %= len(buf)
        if kind == 0:
            buf[pos] = byte
        elif kind == 1:
            buf.insert(pos, byte)
        else:
            del buf[pos]
    return bytes(buf)


REAL = sorted(p for p in CORPUS.rglob("*") if p.is_file() and "histories" not in p.parts)
edit = st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.sampled_from(list(b'{}[]%:,"#\n \\') + [0xFF, 0xC3, ord("a"), ord("1")]) | st.integers(0, 255))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REAL), st.lists(edit, min_size=1, max_size=6))
def test_mutated_real_files_give_a_result_or_a_clear_error(path, edits) -> None:
    data = _mutate(path.read_bytes(), edits)
    try:
        docs = load_unit([(path.name, data)])
    except ConfigParseError as exc:
        assert exc.line >= 1 and exc.column >= 1 and str(exc).startswith(f"{path.name}:")
        return
    check_unit(docs)
    try:
        plan_unit(docs, "0.13")
    except MigrateError:
        pass
    load_document(path.name, data)


KEYS = ["pools", "pool_config", "adapter_module", "grpc_port", "grpc_host", "heartbeat", "session_store", "python_runtime", "python",
        "python_adapter", "log_categories", "python_packages", "cleanup_retry_interval", "wire_protocol", "grpc_listener", "pool_size",
        "interval_ms", "default_ttl", "installer", "name", "strategy", "mode", "port", "log_level"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70_000) | st.sampled_from(["info", "venv", "x:Y", "Snakepit.Adapters.GenericPython"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6), st.sampled_from(VERSIONS))
def test_any_shape_of_settings_gives_a_result_or_a_clear_error(settings_: dict, target: str) -> None:
    import json

    docs = load_unit([("snakepit.json", json.dumps({"snakepit": settings_}).encode())])
    check_unit(docs)
    try:
        plan = plan_unit(docs, target)
    except MigrateError:
        return
    for f in plan.files:
        json.loads(f.after)


@FAST
@given(st.sampled_from(sorted(ERAS)).flatmap(lambda era: st.tuples(st.just(era), ERAS[era])), st.sampled_from(["json", "yaml", "toml"]))
def test_random_valid_old_configs_convert_to_valid_new_ones_in_data_formats(case: tuple[str, dict], fmt: str) -> None:
    import json

    import tomli_w
    import yaml

    from deployment.config.values import contains_opaque, to_plain

    era, cfg = case
    if contains_opaque(cfg):
        return
    plain = {"snakepit": to_plain(cfg)}
    data = {"json": lambda: json.dumps(plain).encode(), "yaml": lambda: yaml.safe_dump(plain).encode(), "toml": lambda: tomli_w.dumps(plain).encode()}[fmt]()
    name = f"snakepit.{fmt}"
    assert check_unit(load_unit([(name, data)]), era).valid
    for target in VERSIONS[VERSIONS.index(era) + 1:]:
        plan = plan_unit(load_unit([(name, data)]), target, era)
        assert plan.valid, (target, [i.text() for i in plan.issues if i.severity == "error"])
        again = plan_unit(load_unit([(name, plan.files[0].after)]), target, target)
        assert not again.changed, again.diff()
