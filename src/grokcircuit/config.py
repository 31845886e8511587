"""Configuration: frozen dataclasses for data, model, training and finetuning; presets; validation; hashing.

Every run is described by one `RunConfig`. Its `run_id` is a hash of the fields that change the numbers
(device, compile and logging cadence excluded), so the run store can find a finished run again.

Presets (`preset(name, regime=..., seed=...)`):
- `paper`: exactly the paper's setting (2000 entities, 200 relations, out-degree 20, phi 18, TRM 1536 wide).
- `cpu`:   the laptop scale the notebooks use by default (see the appendix "Reproducing at small scale").
- `ci`:    proves the code path in seconds; not the science.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

REGIMES = ("natural", "both_hop_full", "both_hop_half", "first_hop_full", "second_hop_full")
ARCHS = ("trm", "looped")
KEEP_POLICIES = ("code", "paper")
GROKFAST_INITS = ("gradient", "zero")


class ConfigError(ValueError):
    """An invalid configuration value; the message is one line naming the field, value and allowed range."""


def _bad(name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"invalid {name}={value!r}: must be {allowed}")


def normalize_regime(name: str) -> str:
    """Accept `both-hop-full` as well as `both_hop_full`."""
    regime = str(name).replace("-", "_")
    if regime not in REGIMES:
        raise _bad("regime", name, "one of " + ", ".join(REGIMES))
    return regime


@dataclass(frozen=True)
class DataConfig:
    """The two-hop knowledge graph (paper §2, reference code §1)."""

    entities: int = 2000
    relations: int = 200
    out_degree: int = 20  # distinct out-relations per entity
    ood_fraction: float = 0.05  # fraction of atomic facts held out of every training composition
    phi: float = 18.0  # train inferred / ID atomic
    id_test_prob: float = 0.005  # chance an ID-ID path becomes a test_inferred_iid query
    probe_size: int = 3000  # items per probe set (the whole set when smaller)
    regime: str = "natural"  # augmentation regime, one of REGIMES
    aug_k: int = 18  # compositions per exposed OOD fact in the "full" regimes (k // 2 in "half")
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "regime", str(self.regime).replace("-", "_"))  # the CLI's spelling, once

    def max_phi(self) -> float:
        """Largest phi the expected ID-ID path pool supports."""
        return self.out_degree * (1 - self.ood_fraction) * (1 - self.id_test_prob)

    def validate(self) -> None:
        if self.entities < 2:
            raise _bad("data.entities", self.entities, ">= 2")
        if self.relations < 1:
            raise _bad("data.relations", self.relations, ">= 1")
        if not 1 <= self.out_degree <= self.relations:
            raise _bad("data.out_degree", self.out_degree, f"in [1, relations={self.relations}]")
        if not 0 < self.ood_fraction < 1:
            raise _bad("data.ood_fraction", self.ood_fraction, "in (0, 1)")
        if not 0 <= self.id_test_prob < 1:
            raise _bad("data.id_test_prob", self.id_test_prob, "in [0, 1)")
        if not 0 <= self.phi <= self.max_phi():
            raise _bad("data.phi", self.phi, f"in [0, {self.max_phi():.3f}] for out_degree={self.out_degree}")
        if self.probe_size < 1:
            raise _bad("data.probe_size", self.probe_size, ">= 1")
        if self.regime not in REGIMES:
            raise _bad("data.regime", self.regime, "one of " + ", ".join(REGIMES))
        if self.aug_k < 0:
            raise _bad("data.aug_k", self.aug_k, ">= 0")
        if self.seed < 0:
            raise _bad("data.seed", self.seed, ">= 0")


@dataclass(frozen=True)
class ModelConfig:
    """Either the paper's TRM (`arch="trm"`) or the looped causal transformer of Wang et al. (`arch="looped"`).

    A looped model with `loops=1` is the standard (non-shared) transformer.
    """

    arch: str = "trm"
    d_model: int = 1536
    n_blocks: int = 2  # distinct blocks in the shared module (TRM) or in the looped stack
    h_cycles: int = 2  # TRM only: z_H updates; all but the last run without gradient
    l_cycles: int = 6  # TRM only: z_L updates per H cycle
    loops: int = 1  # looped only: passes through the block stack
    mixer: str = "mlp"  # TRM token mixing: "mlp" (the paper's mlp_t) or "attn"
    n_heads: int = 8  # attention heads (looped, or TRM with mixer="attn")
    expansion: float = 4.0  # SwiGLU / MLP expansion
    mlp_multiple: int = 256  # SwiGLU inner widths round up to this multiple (the TRM code's 256)
    prefix_len: int = 16  # TRM only: puzzle-prefix slots before the 5 token slots
    loss: str = "stablemax"  # "stablemax" or "softmax" cross-entropy
    q_halt_weight: float = 0.5  # TRM only: weight of the (inert) Q-halt BCE term; needs prefix_len > 0
    tie_embeddings: bool = True  # looped only: unembedding = token embedding (GPT-2)
    positions: str = "learned"  # looped only: "learned" absolute (GPT-2) or "rope" (relative, rotary)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise _bad("model.arch", self.arch, "one of " + ", ".join(ARCHS))
        for name in ("d_model", "n_blocks", "h_cycles", "l_cycles", "loops", "n_heads", "mlp_multiple"):
            if getattr(self, name) < 1:
                raise _bad(f"model.{name}", getattr(self, name), ">= 1")
        if self.mixer not in ("mlp", "attn"):
            raise _bad("model.mixer", self.mixer, "'mlp' or 'attn'")
        if (self.arch == "looped" or self.mixer == "attn") and self.d_model % self.n_heads:
            raise _bad("model.n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")
        if self.positions not in ("learned", "rope"):
            raise _bad("model.positions", self.positions, "'learned' or 'rope'")
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise _bad("model.n_heads", self.n_heads, "such that the head width d_model / n_heads is even (rope)")
        if self.expansion <= 0:
            raise _bad("model.expansion", self.expansion, "> 0")
        if self.prefix_len < 0:
            raise _bad("model.prefix_len", self.prefix_len, ">= 0")
        if self.loss not in ("stablemax", "softmax"):
            raise _bad("model.loss", self.loss, "'stablemax' or 'softmax'")
        if self.q_halt_weight < 0 or (self.q_halt_weight > 0 and self.arch == "trm" and self.prefix_len == 0):
            raise _bad("model.q_halt_weight", self.q_halt_weight, ">= 0, and 0 when prefix_len = 0")


@dataclass(frozen=True)
class TrainConfig:
    """AdamW with linear warm-up then constant LR, EMA weights for evaluation (reference code §3.3)."""

    lr: float = 4e-5
    weight_decay: float = 1.0
    batch_size: int = 512
    warmup_steps: int = 2000
    steps: int = 1_580_180  # optimizer steps (ignored when epochs > 0)
    ema_decay: float = 0.999
    eval_every: int = 7182  # steps between evaluations (ignored when eval_every_epochs > 0)
    epochs: float = 0.0  # > 0: train floor(epochs * N / batch_size) steps, N = this run's training items
    eval_every_epochs: float = 0.0  # > 0: evaluate every round(eval_every_epochs * floor(N / batch_size)) steps
    eval_size: int = 3000  # cap on queries per probe split at evaluation
    seed: int = 0  # model init and batch order
    grokfast_alpha: float = 0.0  # > 0: Grokfast-EMA gradient filter (Lee et al. 2024), pretraining only
    grokfast_lamb: float = 2.0  # the filter adds lamb * EMA(gradient) to each gradient
    grokfast_from: int = 0  # the step at which the filter switches on
    grokfast_init: str = "gradient"  # the filter's average starts at the first gradient (a jump) or at "zero"
    device: str = "auto"  # "auto", "cpu" or "cuda"; not part of the run id
    compile: bool = False  # torch.compile on cuda; not part of the run id
    snapshots: bool = True  # keep the EMA weights of every evaluation; not part of the run id

    def validate(self) -> None:
        if self.lr <= 0:
            raise _bad("train.lr", self.lr, "> 0")
        if self.weight_decay < 0:
            raise _bad("train.weight_decay", self.weight_decay, ">= 0")
        for name in ("batch_size", "steps", "eval_every", "eval_size"):
            if getattr(self, name) < 1:
                raise _bad(f"train.{name}", getattr(self, name), ">= 1")
        if self.warmup_steps < 0:
            raise _bad("train.warmup_steps", self.warmup_steps, ">= 0")
        if not 0 <= self.ema_decay < 1:
            raise _bad("train.ema_decay", self.ema_decay, "in [0, 1)")
        if self.epochs < 0:
            raise _bad("train.epochs", self.epochs, ">= 0")
        if self.eval_every_epochs < 0:
            raise _bad("train.eval_every_epochs", self.eval_every_epochs, ">= 0")
        if self.seed < 0:
            raise _bad("train.seed", self.seed, ">= 0")
        if not 0 <= self.grokfast_alpha < 1:
            raise _bad("train.grokfast_alpha", self.grokfast_alpha, "in [0, 1)")
        if self.grokfast_lamb < 0:
            raise _bad("train.grokfast_lamb", self.grokfast_lamb, ">= 0")
        if self.grokfast_from < 0:
            raise _bad("train.grokfast_from", self.grokfast_from, ">= 0")
        if self.grokfast_init not in GROKFAST_INITS:
            raise _bad("train.grokfast_init", self.grokfast_init, "one of " + ", ".join(GROKFAST_INITS))
        if self.device not in ("auto", "cpu", "cuda"):
            raise _bad("train.device", self.device, "'auto', 'cpu' or 'cuda'")


@dataclass(frozen=True)
class FinetuneConfig:
    """New atomic facts over existing entities (reference code §2), learned from a finished base run."""

    new_atomic: int = 2000  # new facts, built as chained pairs so new->new chains exist
    keep_old: int = 8000  # retained old training items (policy "code") or old atomic facts ("paper")
    keep_policy: str = "code"  # "code": 8000 items closed under dependency; "paper": 8000 atomics + their compositions
    mix_cap: int = 3000  # cap on queries per two-hop test category
    from_scratch: bool = False  # the control group: a fresh model trained on the finetune set with train.lr
    lr: float = 2e-5
    warmup_steps: int = 2000
    steps: int = 39_040  # the paper plots the first 40 evaluations
    eval_every: int = 976  # every 50 epochs of 10,000 items
    seed: int = 0  # new facts and kept items

    def validate(self) -> None:
        if self.new_atomic < 2:
            raise _bad("finetune.new_atomic", self.new_atomic, ">= 2")
        if self.keep_old < 0:
            raise _bad("finetune.keep_old", self.keep_old, ">= 0")
        if self.keep_policy not in KEEP_POLICIES:
            raise _bad("finetune.keep_policy", self.keep_policy, "'code' or 'paper'")
        for name in ("mix_cap", "steps", "eval_every"):
            if getattr(self, name) < 1:
                raise _bad(f"finetune.{name}", getattr(self, name), ">= 1")
        if self.lr <= 0:
            raise _bad("finetune.lr", self.lr, "> 0")
        if self.warmup_steps < 0:
            raise _bad("finetune.warmup_steps", self.warmup_steps, ">= 0")


@dataclass(frozen=True)
class RunConfig:
    """One training run: pretraining when `finetune` is None, else finetuning of the pretraining run
    described by the other fields (or, with `finetune.from_scratch`, the control trained from scratch)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig | None = None

    def validate(self) -> "RunConfig":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if self.finetune is not None:
            self.finetune.validate()
            unused = self.data.entities * (self.data.relations - self.data.out_degree)
            if self.finetune.new_atomic > unused:
                raise _bad("finetune.new_atomic", self.finetune.new_atomic,
                           f"<= {unused}, the unused (head, relation) pairs of the graph")
        return self

    @property
    def base(self) -> "RunConfig":
        """The pretraining run this finetune starts from."""
        return replace(self, finetune=None)

    @property
    def run_id(self) -> str:
        return config_hash(self)


NON_SEMANTIC = {("train", "device"), ("train", "compile"), ("train", "snapshots")}
# Fields added after runs existed: left out of the run id while they hold their default, so earlier ids stay valid.
ADDED_LATER = {("model", "positions"): "learned", ("train", "epochs"): 0.0, ("train", "eval_every_epochs"): 0.0,
               ("train", "grokfast_alpha"): 0.0, ("train", "grokfast_lamb"): 2.0, ("train", "grokfast_from"): 0,
               ("train", "grokfast_init"): "gradient"}


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of `to_dict`; unknown keys are an error."""
    parts = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "finetune": FinetuneConfig}
    unknown = set(d) - set(parts)
    if unknown:
        raise ConfigError(f"unknown config section(s): {sorted(unknown)}")
    kwargs = {}
    for name, cls in parts.items():
        sub = d.get(name)
        if sub is None:
            kwargs[name] = None if name == "finetune" else cls()
            continue
        allowed = {f.name for f in fields(cls)}
        bad = set(sub) - allowed
        if bad:
            raise ConfigError(f"unknown field(s) in {name}: {sorted(bad)}")
        kwargs[name] = cls(**sub)
    return RunConfig(**kwargs)


def config_hash(cfg: RunConfig) -> str:
    """Stable 12-hex-digit id of everything that changes the numbers."""
    d = to_dict(cfg)
    for section, name in NON_SEMANTIC:
        d[section].pop(name, None)
    for (section, name), default in ADDED_LATER.items():
        if d[section].get(name) == default:
            d[section].pop(name)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _coerce(value: Any, default: Any) -> Any:
    """Coerce a CLI string to the type of the field's default."""
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"invalid boolean {value!r}")
    if isinstance(default, int):
        return int(float(value)) if float(value).is_integer() else int(value)
    if isinstance(default, float):
        return float(value)
    return value


def override(cfg: RunConfig, **dotted: Any) -> RunConfig:
    """Apply overrides such as `override(cfg, **{"train.lr": "1e-3"})`; unknown keys are an error."""
    sections = {"data": cfg.data, "model": cfg.model, "train": cfg.train, "finetune": cfg.finetune}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        if section not in sections or not name:
            raise ConfigError(f"unknown config key {key!r}: use section.field with section in {list(sections)}")
        sub = sections[section]
        if sub is None:
            sub = FinetuneConfig()
        valid = {f.name: f for f in fields(sub)}
        if name not in valid:
            raise ConfigError(f"unknown config key {key!r}: {section} has {sorted(valid)}")
        try:
            value = _coerce(value, getattr(sub, name))
        except ValueError as exc:
            raise ConfigError(f"invalid {key}={value!r}: {exc}") from None
        sections[section] = replace(sub, **{name: value})
    return RunConfig(**sections)


# ---------------------------------------------------------------- presets

def _paper(regime: str, seed: int) -> RunConfig:
    return RunConfig(data=DataConfig(regime=regime), model=ModelConfig(),
                     train=TrainConfig(seed=seed, snapshots=False, epochs=1100, eval_every_epochs=5),
                     finetune=None)


def _ci(regime: str, seed: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(entities=60, relations=12, out_degree=10, ood_fraction=0.1, phi=5.0,
                        id_test_prob=0.05, probe_size=300, regime=regime, aug_k=5, seed=seed),
        model=ModelConfig(arch="looped", d_model=64, n_blocks=2, loops=2, n_heads=4, tie_embeddings=True,
                          loss="softmax", q_halt_weight=0.0, prefix_len=0),
        train=TrainConfig(lr=3e-3, weight_decay=0.1, batch_size=128, warmup_steps=50, steps=400,
                          ema_decay=0.9, eval_every=100, eval_size=300, seed=seed),
    )


def _cpu(regime: str, seed: int) -> RunConfig:
    """The scale found by the search (appendix "Reproducing at small scale"): a looped causal transformer on a
    60-entity graph, trained with the Grokfast-EMA gradient filter from step 6,000 (just before the fit), its
    average started at zero so that switching it on does not collapse training. The natural regime trains
    60,000 steps, since its OOD answers come after about 35,000; the others 20,000."""
    return RunConfig(
        data=DataConfig(entities=60, relations=24, out_degree=20, ood_fraction=0.1, phi=17.0,
                        id_test_prob=0.02, probe_size=1000, regime=regime, aug_k=18, seed=seed),
        model=ModelConfig(arch="looped", d_model=128, n_blocks=2, loops=2, n_heads=4, tie_embeddings=True,
                          loss="softmax", q_halt_weight=0.0, prefix_len=0),
        train=TrainConfig(lr=1e-3, weight_decay=0.5, batch_size=128, warmup_steps=200,
                          steps=60000 if regime == "natural" else 20000, ema_decay=0.99, eval_every=500,
                          eval_size=1000, seed=seed, grokfast_alpha=0.98, grokfast_lamb=2.0, grokfast_from=6000,
                          grokfast_init="zero"),
    )


PRESETS = {"paper": _paper, "cpu": _cpu, "ci": _ci}

# Finetuning settings per preset (paper: reference code §3.3). Finetuning LR is half the pretraining LR, as in
# the paper (2e-5 after 4e-5).
FINETUNE_PRESETS = {
    "paper": FinetuneConfig(),
    "cpu": FinetuneConfig(new_atomic=200, keep_old=2000, lr=5e-4, warmup_steps=100, steps=3000,
                          eval_every=250, mix_cap=1000),
    "ci": FinetuneConfig(new_atomic=40, keep_old=400, lr=3e-3, warmup_steps=20, steps=200, eval_every=50,
                         mix_cap=200),
}


def preset(name: str, regime: str = "natural", seed: int = 0, finetune: bool = False,
           from_scratch: bool = False, **overrides: Any) -> RunConfig:
    """The named preset for one regime and seed, with optional dotted overrides, validated."""
    if name not in PRESETS:
        raise _bad("preset", name, "one of " + ", ".join(PRESETS))
    cfg = PRESETS[name](regime, int(seed))
    if finetune or from_scratch:
        cfg = replace(cfg, finetune=replace(FINETUNE_PRESETS[name], seed=int(seed), from_scratch=from_scratch))
    return override(cfg, **overrides).validate()


def run_length(name: str, **overrides: Any) -> str:
    """How long a preset trains: one length, or the natural regime's beside the other regimes' (which the presets
    keep equal), e.g. "60,000 steps (natural regime), 20,000 steps (the others)"."""
    def length(c: RunConfig) -> str:
        return f"{c.train.epochs:,g} epochs" if c.train.epochs else f"{c.train.steps:,} steps"
    by = {r: length(preset(name, regime=r, **overrides)) for r in REGIMES}
    if len(set(by.values())) == 1:
        return by["natural"]
    return f"{by['natural']} (natural regime), {by['both_hop_full']} (the others)"


def optimizer_text(cfg: RunConfig) -> str:
    """The optimizer of a run in words, naming the gradient filter when it has one."""
    t = cfg.train
    text = f"AdamW (learning rate {t.lr:g}, weight decay {t.weight_decay:g})"
    if t.grokfast_alpha > 0:
        text += (f" with the Grokfast-EMA gradient filter (alpha {t.grokfast_alpha:g}, lambda {t.grokfast_lamb:g}) "
                 f"from step {t.grokfast_from:,}")
    return text
