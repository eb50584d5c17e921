"""The Elixir config parser: literals become data, everything else stays verbatim, errors are located."""

from __future__ import annotations

import pytest

from deployment.config.errors import ConfigParseError
from deployment.config.exs import parse_exs
from deployment.config.values import Atom, Keywords, Module, Opaque

SOURCE = b'''import Config
# a comment
config :snakepit,
  pooling_enabled: true,
  pool_config: %{pool_size: System.schedulers_online() * 2, adapter_args: ["--adapter", "a.B"]},
  adapter_module: Snakepit.Adapters.GRPCPython,
  grpc_port: 50_051,
  hex: 0x1F,
  worker_ttl: {3600, :seconds},
  name: "abc#{x}",
  escaped: "tab\\there",
  neg: -1, ratio: 0.5, nothing: nil, q: :"quoted atom", kw: [a: 1, b: 2],
  arrow: %{:pool => :debug}

config :snakepit, :python, strategy: :uv
config :logger, level: :info
import_config "#{config_env()}.exs"

if config_env() == :prod do
  config :snakepit, pool_size: 4
end
'''


def test_literals_become_data_and_expressions_stay_opaque() -> None:
    cfg = parse_exs(SOURCE).config()
    assert cfg["pooling_enabled"] is True
    assert cfg["pool_config"]["pool_size"] == Opaque("System.schedulers_online() * 2")
    assert cfg["pool_config"]["adapter_args"] == ["--adapter", "a.B"]
    assert isinstance(cfg["adapter_module"], Module) and cfg["adapter_module"] == "Snakepit.Adapters.GRPCPython"
    assert cfg["grpc_port"] == 50051 and cfg["hex"] == 31
    assert cfg["worker_ttl"] == (3600, Atom("seconds")) and isinstance(cfg["worker_ttl"][1], Atom)
    assert cfg["name"] == Opaque('"abc#{x}"')
    assert cfg["escaped"] == "tab\there"
    assert (cfg["neg"], cfg["ratio"], cfg["nothing"]) == (-1, 0.5, None)
    assert cfg["q"] == "quoted atom" and isinstance(cfg["q"], Atom)
    assert isinstance(cfg["kw"], Keywords) and cfg["kw"] == {"a": 1, "b": 2}
    assert cfg["arrow"] == {"pool": Atom("debug")} and not isinstance(cfg["arrow"], Keywords)


def test_sub_key_calls_conditional_calls_and_other_apps() -> None:
    exs = parse_exs(SOURCE)
    cfg = exs.config()
    assert cfg["python"] == Keywords(strategy=Atom("uv"))
    assert cfg["pool_size"] == 4  # inside `if config_env() == :prod`
    assert "level" not in cfg  # :logger is another application
    assert exs.imports == ['"#{config_env()}.exs"']
    assert len(exs.calls) == 3


def test_locations_are_one_based_line_and_column() -> None:
    loc = parse_exs(SOURCE).locations()
    assert (loc[("grpc_port",)].line, loc[("grpc_port",)].column) == (7, 3)
    assert (loc[("pool_config", "adapter_args")].line, loc[("pool_config", "adapter_args")].column) == (5, 61)
    assert loc[("python", "strategy")].line == 15


def test_keyword_lists_merge_deeply_across_calls_and_maps_are_replaced() -> None:
    exs = parse_exs(b"""import Config
config :snakepit, :python, strategy: :uv, managed: true
config :snakepit, :python, managed: false
config :snakepit, pool_config: %{pool_size: 4, adapter_args: []}
config :snakepit, pool_config: %{pool_size: 8}
""")
    cfg = exs.config()
    assert cfg["python"] == {"strategy": "uv", "managed": False}
    assert cfg["pool_config"] == {"pool_size": 8}


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        (b"import Config\nconfig :snakepit,\n  pool_config: %{pool_size: 4,\n", 4, 1),
        (b"config :snakepit, pool_size: (\n", 2, 1),
        (b"import Config\n\nconfig :snakepit, pool_size: 4 end\n", 3, 32),
    ],
)
def test_syntax_errors_name_line_and_column(source: bytes, line: int, column: int) -> None:
    with pytest.raises(ConfigParseError) as info:
        parse_exs(source, "config/config.exs")
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"config/config.exs:{line}:{column}:")


def test_invalid_utf8_is_a_located_parse_error() -> None:
    with pytest.raises(ConfigParseError) as info:
        parse_exs(b'import Config\nconfig :snakepit, name: "\xff"\n', "c.exs")
    assert info.value.line == 2 and "UTF-8" in info.value.problem
