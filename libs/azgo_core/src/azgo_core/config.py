"""azgo's settings: one YAML file (``configs/azgo.yaml``) read into pydantic-settings models.

Every field can be overridden by an environment variable ``AZGO_<SECTION>__<FIELD>``
(``AZGO_DISTRIBUTED__BATCH_SIZE=50``, ``AZGO_SELF_PLAY__PARALLEL_GAMES=32``); lists and maps
take JSON (``AZGO_DISTRIBUTED__WORKERS='[{"host": "gpu1"}]'``). Precedence, highest first:
environment, YAML file, the defaults written here.

Nothing is read at import: ``load_settings(path)`` reads the file and the environment when
called. A bad value raises ``ConfigError`` whose message names each field's dotted path
(``distributed.batch_size``) and the reason; unknown keys in the YAML file are errors too, so a
typo never silently falls back to a default.

Sections: ``board``, ``model``, ``search``, ``self_play``, ``train``, ``learner``, ``broker``,
``distributed``, ``run``, ``evaluation``. Each field's meaning is the docstring under it.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .params import NetConfig, SearchConfig, SelfPlayConfig, TrainConfig, default_and_bounds

ENV_PREFIX = "AZGO_"
ENV_DELIMITER = "__"
DEFAULT_CONFIG_PATH = Path("configs/azgo.yaml")


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names every bad field."""


DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[?[0-9A-Fa-f:]+\]?$"


def setting(cls: type, name: str, **extra: Any) -> Any:
    """A settings field whose default and bounds are those of the library dataclass ``cls``'s
    field ``name`` (``params``: the one home of each default); ``extra``: pydantic-only options."""
    default, bounds = default_and_bounds(cls, name)
    return Field(default, **bounds, **extra)


class _Section(BaseModel):
    # the docstring under each field is its description (the generated configuration reference)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True)


class Board(_Section):
    """The game: board size and komi (Tromp-Taylor rules: area scoring, positional superko)."""

    size: int = setting(NetConfig, "board_size")
    """Board size N."""
    komi: float = setting(SelfPlayConfig, "komi", allow_inf_nan=False)
    """Komi given to white (area scoring; 7x7 is fair at 9)."""


class Model(_Section):
    """The network: AlphaGo Zero's residual tower with KataGo's auxiliary heads and global pooling."""

    blocks: int = setting(NetConfig, "blocks")
    """Residual blocks in the tower."""
    channels: int = setting(NetConfig, "channels")
    """Convolution channels."""
    value_hidden: int = setting(NetConfig, "value_hidden")
    """Width of the value head's hidden layer."""
    history: int = setting(NetConfig, "history")
    """Past positions in the input planes (AlphaGo Zero: 8)."""
    aux_heads: bool = setting(NetConfig, "aux_heads")
    """KataGo's auxiliary heads: final ownership, final score, the opponent's reply (off: at 12 and 30
    minutes on 2 cores they did not pay for their cost, docs/results/2026-12-03-7x7-ab30.md)."""
    global_pooling: bool = setting(NetConfig, "global_pooling")
    """KataGo's global pooling in blocks 2, 5, 8, ... of the tower (off with the heads, measured alike)."""


class Search(_Section):
    """Self-play search: PUCT or Gumbel at the root, playout-cap randomization, passing and resignation."""

    algorithm: Literal["puct", "gumbel"] = setting(SearchConfig, "algorithm")
    """Root search: 'puct' (AlphaZero: Dirichlet noise, visit-count targets) or 'gumbel' (Gumbel AlphaZero:
    Gumbel-Top-k and Sequential Halving at the root, completed-Q policy targets; no Dirichlet noise, no tree reuse)."""
    visits: int = setting(SearchConfig, "visits")
    """Visits of a full search (the policy targets); under gumbel its simulations."""
    cheap_visits: int = setting(SearchConfig, "cheap_visits")
    """Visits of a cheap search (KataGo's playout-cap randomization)."""
    max_considered: int = setting(SearchConfig, "max_considered")
    """Gumbel only: actions sampled at the root (Gumbel-Top-k) for Sequential Halving."""
    full_search_prob: float = setting(SearchConfig, "full_search_prob")
    """Share of moves searched fully."""
    c_puct: float = setting(SearchConfig, "c_puct")
    """PUCT exploration constant (AlphaZero's pb_c_init)."""
    noise_fraction: float = setting(SearchConfig, "noise_fraction")
    """Dirichlet noise share at full-search roots (puct only: gumbel draws Gumbel noise instead)."""
    resign_threshold: float = setting(SearchConfig, "resign_threshold")
    """Resign when the root value falls below this."""
    no_resign_share: float = setting(SearchConfig, "no_resign_share")
    """Share of games that never resign (measures false resignations)."""
    resign_calibration_games: int = setting(SearchConfig, "resign_calibration_games")
    """Won no-resign games needed before anyone resigns; then the threshold is calibrated (0: fixed threshold)."""
    resign_false_positives: float = setting(SearchConfig, "resign_false_positives")
    """Target share of false resignations for the calibrated threshold (AlphaGo Zero: 5%)."""
    resign_max_share: float = setting(SelfPlayConfig, "resign_max_share")
    """Resignation pauses while more than this share of a worker's last 200 games were resigned."""
    settled_pass: bool = setting(SearchConfig, "settled_pass")
    """A side passes only after the opponent's pass or when the board is divided (no dame, no uncaptured dead stones)."""

    @model_validator(mode="after")
    def _cheap_not_above_full(self) -> Search:
        if self.cheap_visits > self.visits:
            raise ValueError(f"cheap_visits ({self.cheap_visits}) must not exceed visits ({self.visits})")
        return self


class SelfPlay(_Section):
    """Self-play workers: games at once, the network batch, devices and threads."""

    games_per_worker: int = Field(0, ge=0)
    """Games each worker plays before it exits; 0 plays forever."""
    parallel_games: int = setting(SelfPlayConfig, "parallel_games")
    """Games a worker plays at once; their leaves share one network batch."""
    batch_size: int = setting(SelfPlayConfig, "batch_size")
    """Largest network batch (leaves beyond it go to a second call in the same step)."""
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    """torch device for the network: auto (cuda when present, else cpu), cpu, cuda, cuda:1."""
    threads: int = Field(1, ge=1, le=256)
    """CPU threads for torch in a worker."""
    search_threads: int = setting(SelfPlayConfig, "search_threads")
    """Threads of the compiled search over a worker's games (the same games for a fixed seed);
    0: every core the worker may use. 1 on CPU workers, which share the host's cores; on a GPU
    host 0 (or the cores per worker), so the search keeps up with the network."""
    overlap: bool = setting(SelfPlayConfig, "overlap")
    """Pipeline the network and the search over two halves of a worker's games, so that neither
    waits for the other (GPU hosts: true; CPU workers share their cores, so false)."""
    data_dir: str = "data/selfplay"
    """Where workers keep their outbox of unacknowledged batches (one folder per worker id)."""


class Train(_Section):
    """The optimiser and the losses' weights."""

    batch_size: int = setting(TrainConfig, "batch_size")
    """Positions per optimisation step."""
    optimizer: Literal["sgd", "adamw"] = setting(TrainConfig, "optimizer")
    """'sgd' (momentum, L2 in the loss, AlphaZero) or 'adamw'."""
    lr: float = setting(TrainConfig, "lr")
    """Peak learning rate."""
    momentum: float = setting(TrainConfig, "momentum")
    """SGD momentum."""
    weight_decay: float = setting(TrainConfig, "weight_decay")
    """L2 coefficient c."""
    warmup_steps: int = setting(TrainConfig, "warmup_steps")
    """Linear learning-rate warm-up."""
    lr_milestones: tuple[int, ...] = setting(TrainConfig, "lr_milestones")
    """Steps at which the learning rate is multiplied by lr_gamma."""
    lr_gamma: float = setting(TrainConfig, "lr_gamma")
    """Learning-rate decay factor at each milestone."""
    grad_clip: float | None = setting(TrainConfig, "grad_clip")
    """Clip the global gradient norm (null: no clipping)."""
    ownership_loss_weight: float = setting(TrainConfig, "ownership_loss_weight")
    """Weight of the ownership loss (KataGo: 1.5 over the board's mean)."""
    score_loss_weight: float = setting(TrainConfig, "score_loss_weight")
    """Weight of the score loss (Huber on score / N)."""
    opponent_policy_loss_weight: float = setting(TrainConfig, "opponent_policy_loss_weight")
    """Weight of the opponent-reply policy loss (KataGo: 0.15)."""


class Learner(_Section):
    """The learner: training window, sample ratio, checkpoints, reports."""

    data_dir: str = "data/learner"
    """Checkpoints, TensorBoard logs and the learner's metrics log."""
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    """torch device for training: auto, cpu, cuda, cuda:1."""
    threads: int = Field(1, ge=1, le=256)
    """CPU threads for torch in the learner."""
    window_positions: int = setting(TrainConfig, "window")
    """Training window: the most recent policy-target positions."""
    min_positions: int = Field(1_000, ge=1)
    """Positions the window must hold before the first step."""
    steps_per_generation: int = Field(50, ge=1)
    """Optimisation steps between two published generations."""
    max_samples_per_position: float = Field(8.0, gt=0)
    """Upper bound of (samples trained) / (new positions): above it the learner waits for games."""
    min_samples_per_position: float = Field(0.5, ge=0)
    """Lower bound: when training falls further behind, the surplus positions are written off (logged)."""
    checkpoint_interval: float = Field(60.0, gt=0)
    """Seconds between checkpoints (one is also written at every generation and at exit)."""
    keep_checkpoints: int = Field(3, ge=1)
    """Checkpoints kept on disk."""
    report_interval: float = Field(2.0, gt=0)
    """Seconds between figures sent to the broker."""
    tensorboard: bool = True
    """Write TensorBoard event files under data_dir/tensorboard."""
    seed: int = Field(0, ge=0)
    """Seed of generation 0's weights and of sampling."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Learner:
        if self.min_samples_per_position > self.max_samples_per_position:
            raise ValueError(
                f"min_samples_per_position ({self.min_samples_per_position}) "
                f"exceeds max_samples_per_position ({self.max_samples_per_position})"
            )
        return self


class Broker(_Section):
    """The broker: sockets, ports, the game store and the largest batch it accepts."""

    bind: str = "127.0.0.1"
    """Address the broker's sockets bind to (0.0.0.0 for every interface)."""

    @field_validator("bind")
    @classmethod
    def _ip_address(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"must be an IP address of this machine (127.0.0.1, 0.0.0.0, ::), got {v!r}") from None
        return v
    router_port: int = Field(5555, ge=1, le=65535)
    """ZeroMQ ROUTER port: requests from workers and the learner."""
    pub_port: int = Field(5556, ge=1, le=65535)
    """ZeroMQ PUB port: new-model announcements."""
    http_port: int = Field(9100, ge=0, le=65535)
    """HTTP port for /metrics, /status and /healthz (0: pick a free one)."""
    data_dir: str = "data/broker"
    """Game log, model registry and status.txt."""
    segment_bytes: int = Field(64 << 20, ge=1 << 16)
    """Game-log segment size before a new segment starts."""
    max_batch_bytes: int = Field(64 << 20, ge=1 << 10)
    """Largest accepted batch, compressed or not (and its decompressed size)."""
    max_batch_games: int = Field(10_000, ge=1)
    """Most games in one batch."""
    validation_threads: int = Field(1, ge=1, le=64)
    """Threads that decode and check incoming batches beside the poll loop (the compiled replay
    releases the GIL); acks keep arrival order and still wait for the fsync. Raise it on a broker
    host with cores to spare and many workers."""
    status_interval: float = Field(1.0, gt=0)
    """Seconds between rewrites of status.txt and the status snapshot."""
    fsync: bool = True
    """fsync the game log before acknowledging (off only for throwaway runs)."""


class WorkerHost(_Section):
    """A remote self-play host for `make deploy`."""

    host: str = Field(pattern=HOST_PATTERN)
    """Host name or address of a GPU machine (deploy)."""
    user: str | None = None
    """SSH user (default: yours)."""
    key_path: str | None = None
    """SSH private key for that host."""
    gpu_id: int | None = Field(None, ge=0)
    """GPU index on that host (null: all)."""
    weight: float = Field(1.0, gt=0)
    """This host's self-play load relative to the configured one: each of its workers plays
    round(weight * self_play.parallel_games) games at once (network batch scaled alike)."""


class Distributed(_Section):
    """How workers and the learner reach the broker: batches, model sync, heartbeats, reconnects, load balancing."""

    broker_host: str = Field("127.0.0.1", pattern=HOST_PATTERN)
    """Where workers and the learner reach the broker (host name or address)."""
    workers: list[WorkerHost] = []
    """Remote self-play hosts (make deploy)."""
    compression: bool = True
    """lz4-compress game batches on the wire."""
    batch_size: int = Field(100, ge=1, le=10_000)
    """Games per transfer from a worker to the broker."""
    batch_max_wait: float = Field(60.0, ge=0)
    """Seconds a finished game may wait for its batch to fill before a smaller batch goes (0: always full batches)."""
    sync_interval: int = Field(16, ge=0)
    """Finished games between a worker's explicit model checks (0: only announcements)."""
    load_balancing: Literal["weighted", "even"] = "weighted"
    """weighted: a deployed host's workers play weight x parallel_games games at once; even: every host the same."""
    worker_weights: dict[str, float] = {}
    """Weights by host name, overriding workers[].weight (hosts named only in HOSTS= too)."""
    heartbeat_interval: float = Field(1.0, gt=0, le=60)
    """Seconds between heartbeats (Paranoid Pirate: 1 s)."""
    liveness: int = Field(3, ge=1, le=100)
    """Heartbeats missed before a worker is Offline, or a peer is presumed dead."""
    reconnect_min: float = Field(1.0, gt=0)
    """First reconnect delay (seconds); doubles on each failure..."""
    reconnect_max: float = Field(32.0, gt=0)
    """...up to this."""
    request_timeout: float = Field(10.0, gt=0)
    """Seconds to wait for a reply before reconnecting."""

    @field_validator("worker_weights")
    @classmethod
    def _positive_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {h: w for h, w in v.items() if not w > 0}
        if bad:
            raise ValueError(f"weights must be > 0, got {bad}")
        return v

    @model_validator(mode="after")
    def _backoff_ordered(self) -> Distributed:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError(f"reconnect_min ({self.reconnect_min}) exceeds reconnect_max ({self.reconnect_max})")
        return self

    @property
    def liveness_seconds(self) -> float:
        """Silence after which a peer counts as gone."""
        return self.heartbeat_interval * self.liveness


class Run(_Section):
    """`make run`: the local pipeline."""

    selfplay_workers: int = Field(2, ge=0, le=64)
    """Self-play processes `make run` starts on this machine."""
    progress_interval: float = Field(5.0, gt=0)
    """Seconds between progress lines."""


class Evaluation(_Section):
    """The evaluator: rated matches of every new generation against earlier ones, GNU Go and the random player."""

    enabled: bool = True
    """Run the evaluator (make run, docker compose): every new generation plays rated matches."""
    games_per_match: int = Field(10, ge=1, le=10_000)
    """Games of each match, colours alternated."""
    visits: int = Field(25, ge=1)
    """MCTS visits per move of our networks in evaluation games (no noise, most visited move)."""
    opponents: int = Field(1, ge=0, le=100)
    """Earlier evaluated generations each new generation plays (the most recent ones)."""
    gnugo_levels: list[Annotated[int, Field(ge=0, le=10)]] = [1, 10]
    """GNU Go's levels as anchor opponents: one match against each (empty: none)."""
    gnugo_every: int = Field(5, ge=0)
    """Play GNU Go every this many evaluated generations (the first one always; 0: never)."""
    random_every: int = Field(5, ge=0)
    """Play the random player (Elo 0) every this many evaluated generations (the first one always; 0: never)."""
    gating: bool = False
    """Gate generations as in the seed's arena: a new one must beat the best so far (reported, not enforced)."""
    gate_win_rate: float = Field(0.55, gt=0, le=1)
    """Score a generation needs against the best to be accepted."""
    gate_games: int = Field(50, ge=1)
    """Games of a gating match."""
    prior_draws: float = Field(1.0, ge=0)
    """Virtual draws per pair in the rating fit (keeps an unbeaten player finite)."""
    data_dir: str = "data/evaluator"
    """results.jsonl, ratings.json, status.jsonl and sgf/ of every evaluation game."""
    gnugo: str = "/usr/games/gnugo"
    """GNU Go binary (a missing one skips the GNU Go matches, with a warning)."""
    device: str = "cpu"
    """torch device of the evaluator's networks."""
    threads: int = Field(1, ge=1, le=256)
    """CPU threads for torch in the evaluator."""
    nice: int = Field(10, ge=0, le=19)
    """The evaluator's niceness (and its GNU Go's): on a machine it shares with self-play and the
    learner it takes the time they leave, so ratings come less often, never at the cost of games."""
    status_interval: float = Field(30.0, gt=0)
    """Seconds between samples of the broker's /status appended to status.jsonl (for azgo report)."""


class Security(_Section):
    """ZeroMQ CURVE: encryption and the broker's allow-list of client keys."""

    curve: Literal["auto"] | bool = "auto"
    """ZeroMQ CURVE (encryption + the broker's allow-list of client keys) on the broker's sockets.
    auto: on exactly when broker.bind is not a loopback address (every peer computes the same
    from the shared config); true / false force it. The HTTP port is not covered (read-only figures)."""
    keys_dir: str = "keys"
    """Key files (`make keys`): broker.key_secret and authorized/ (the broker's), broker.key and
    workers/NAME.key_secret or NAME.key_secret (a client's). /run/secrets in containers."""
    client_key: str | None = None
    """The key NAME a client uses; None: its role (selfplay, learner, evaluator)."""
    reload_interval: float = Field(1.0, gt=0, le=3600)
    """Seconds between looks at authorized/ for added or revoked keys (no restart needed)."""


class Settings(BaseSettings):
    """The whole configuration. Build it with ``load_settings``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid", frozen=True, validate_default=True
    )

    board: Board = Board()
    model: Model = Model()
    search: Search = Search()
    self_play: SelfPlay = SelfPlay()
    train: Train = Train()
    learner: Learner = Learner()
    broker: Broker = Broker()
    distributed: Distributed = Distributed()
    run: Run = Run()
    evaluation: Evaluation = Evaluation()
    security: Security = Security()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # The YAML file arrives as init arguments; the environment overrides it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        ports = {"router_port": self.broker.router_port, "pub_port": self.broker.pub_port}
        if self.broker.http_port:
            ports["http_port"] = self.broker.http_port
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"broker ports must differ, got {ports}")
        return self

    # --- views for the library ------------------------------------------------------------
    def net_config(self) -> NetConfig:
        m = self.model
        return NetConfig(board_size=self.board.size, history=m.history, blocks=m.blocks, channels=m.channels,
                         value_hidden=m.value_hidden, aux_heads=m.aux_heads, global_pooling=m.global_pooling)

    def search_config(self) -> SearchConfig:
        s = self.search
        return SearchConfig(algorithm=s.algorithm, max_considered=s.max_considered,
                            visits=s.visits, cheap_visits=s.cheap_visits, full_search_prob=s.full_search_prob,
                            c_puct=s.c_puct, noise_fraction=s.noise_fraction, resign_threshold=s.resign_threshold,
                            no_resign_share=s.no_resign_share, resign_calibration_games=s.resign_calibration_games,
                            resign_false_positives=s.resign_false_positives, settled_pass=s.settled_pass,
                            history=self.model.history)

    def selfplay_config(self) -> SelfPlayConfig:
        return SelfPlayConfig(board_size=self.board.size, komi=self.board.komi,
                              parallel_games=self.self_play.parallel_games, batch_size=self.self_play.batch_size,
                              search_threads=self.self_play.search_threads, overlap=self.self_play.overlap,
                              resign_max_share=self.search.resign_max_share, search=self.search_config())

    def train_config(self) -> TrainConfig:
        t = self.train
        return TrainConfig(batch_size=t.batch_size, optimizer=t.optimizer, lr=t.lr, momentum=t.momentum,
                           weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, lr_milestones=t.lr_milestones,
                           lr_gamma=t.lr_gamma, grad_clip=t.grad_clip, window=self.learner.window_positions,
                           ownership_loss_weight=t.ownership_loss_weight, score_loss_weight=t.score_loss_weight,
                           opponent_policy_loss_weight=t.opponent_policy_loss_weight)

    def router_endpoint(self, host: str | None = None) -> str:
        return f"tcp://{host or self.distributed.broker_host}:{self.broker.router_port}"

    def pub_endpoint(self, host: str | None = None) -> str:
        return f"tcp://{host or self.distributed.broker_host}:{self.broker.pub_port}"

    def host_weight(self, host: str) -> float:
        """A deployed host's self-play load factor: 1 under ``even`` balancing, else
        ``worker_weights[host]``, else the weight of its ``workers[]`` entry, else 1."""
        d = self.distributed
        if d.load_balancing == "even":
            return 1.0
        if host in d.worker_weights:
            return d.worker_weights[host]
        return next((w.weight for w in d.workers if w.host == host), 1.0)

    def weighted_self_play(self, weight: float) -> tuple[int, int]:
        """(parallel_games, batch_size) of a worker on a host of ``weight``: both scaled, at least 1."""
        sp = self.self_play
        scale = lambda n: max(1, min(4096, round(n * weight)))  # noqa: E731  (the fields' bounds)
        return scale(sp.parallel_games), scale(sp.batch_size)

    @property
    def curve_enabled(self) -> bool:
        """CURVE on the broker's sockets: ``security.curve``, auto = the broker binds beyond loopback."""
        mode = self.security.curve
        return mode is True or (mode == "auto" and not is_loopback(self.broker.bind))

    def dump(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-ready) of the resolved settings."""
        return json.loads(self.model_dump_json())


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        reason = e["msg"]
        if e["type"] == "extra_forbidden":
            reason = "unknown setting (check the spelling against configs/azgo.yaml)"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {path}: {reason}{shown}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML file as a mapping; raises ``ConfigError`` naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_settings(path: str | Path | None = DEFAULT_CONFIG_PATH, **overrides: Any) -> Settings:
    """Read ``path`` (None: defaults only), apply ``AZGO_*`` environment variables, validate.

    ``overrides``: section mappings that replace the file's (``run={"selfplay_workers": 2}``),
    below the environment in precedence like the file itself.
    """
    data = read_yaml(path) if path is not None else {}
    for section, values in overrides.items():
        merged = dict(data.get(section) or {})
        merged.update(values)
        data[section] = merged
    origin = f"{path} + {ENV_PREFIX}* environment" if path is not None else f"defaults + {ENV_PREFIX}* environment"
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin)) from None


def settings_yaml(settings: Settings) -> str:
    """The resolved settings as YAML (``azgo config``; saved beside every checkpoint)."""
    return yaml.safe_dump(settings.dump(), sort_keys=False, default_flow_style=False)


__all__ = [
    "Board", "Broker", "ConfigError", "DEFAULT_CONFIG_PATH", "Distributed", "Evaluation", "Learner", "Model", "Run", "Search",
    "SelfPlay", "Settings", "Train", "WorkerHost", "is_loopback", "load_settings", "read_yaml", "settings_yaml",
]
