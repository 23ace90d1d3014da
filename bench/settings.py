"""How `commbench run` measures, as the ranks, the backends and the local launcher read it: one
small object built once from the parsed options (settings_of), instead of the options
themselves. Each option's default is defined here once; bench.run's parser takes it from here."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

DEFAULT_TIMEOUT_S = 120.0  # --timeout: seconds a case may make no progress (torch's own timeout too)


@dataclass(frozen=True)
class Settings:
    backend: str = "mpi"            # --backend as given (a comma list: names the run directory)
    nranks: int | None = None       # -n: local ranks to start; under a launcher, the count it must give
    out: str | None = None          # --out
    force: bool = False             # --force: start --out afresh
    seed: int | None = None         # --seed of the case order (None: from the clock)
    timeout_s: float = DEFAULT_TIMEOUT_S
    launches: int = 3               # --launches (local runs)
    launch_index: int | None = None  # which launch this is (set by the local launcher)
    noise: bool = True              # --noise: calibrate the machine's noise first
    ceilings: bool = True           # --ceilings: measure copy and line rates first
    quiet: bool = False             # -q: no progress, no tables
    device: str | None = None       # --device (None: each backend's own)
    timer: str = "host"             # --timer: host or cuda
    cuda_graph: bool = False        # --cuda-graph
    loop: str | None = None         # --loop: native or python (None: native where it builds)
    # the options as given, recorded in meta.json's settings (all of them, as parsed)
    recorded: dict = field(default_factory=dict, compare=False)

    @property
    def launch_number(self) -> int:
        """Which launch of a run this is (`--launches`: commbench restarts the ranks between
        rounds so launch-to-launch variation is part of every run); 0 for a single launch."""
        return self.launch_index or 0


DEFAULTS = Settings()
_OPTION_OF = {"timeout_s": "timeout"}  # field -> the option's dest, where the names differ


def settings_of(args) -> Settings:
    """The settings of parsed options (argparse.Namespace); a field whose option was not
    parsed keeps its default. Everything parsed is recorded, except which launch this is."""
    given = vars(args)
    values = {f.name: given[_OPTION_OF.get(f.name, f.name)] for f in fields(Settings)
              if f.name != "recorded" and _OPTION_OF.get(f.name, f.name) in given}
    recorded = {k: v for k, v in given.items() if not k.startswith("_") and k != "launch_index"}
    return Settings(**values, recorded=recorded)
