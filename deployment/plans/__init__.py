"""Migration plans: several migrations ordered by their dependencies, bound per environment.

Pure logic: :mod:`.loader` (YAML with lines), :mod:`.graph` (cycles, levels,
conflicts), :mod:`.resolve` (binding, parameter checks), :mod:`.report`
(steps, estimates, rollback, risks).  I/O: :mod:`.check` reads the files and
:mod:`.feasibility` asks stores, configs and fleets.
"""
