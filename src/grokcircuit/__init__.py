"""grokcircuit: a reproduction of "Is Grokking Worthwhile?" (He et al., 2026) for a laptop CPU.

Notebooks write `import grokcircuit as gc`. Modules, in import order: config, data, augment, dataset,
finetune, encode, model, flops, lens, runs, probe, paths, train, paper, findings, claims, search, experiments, reproduce,
plots, cli.
"""
from .augment import REGIME_SPECS, regime_params
from .config import (REGIMES, ConfigError, DataConfig, FinetuneConfig, ModelConfig, RunConfig, TrainConfig,
                     override, preset)
from .data import PROBES, Items, KGDataset, token_names
from .dataset import make_dataset
from .encode import encode
from .finetune import CATEGORIES, build_finetune_set
from .lens import Queries, bridge_found, exact_match, lens_frame, lens_metrics, run_lens, target_found
from .model import build_model, stage_label, stage_names
from .runs import Run, RunCorrupted, list_runs, open_run, runs_root
from .train import build_task, get_or_train, train
from .experiments import (as_list, committed_run, finetune_config, finetune_metrics, pretrain_config, pretrain_metrics,
                          test_queries)
from .findings import (CRITERIA, Criterion, criteria_table, judge_seeds, milestones, summarize_finetune,
                       summarize_pretrain)
from . import claims
from . import paper
from . import search
from .flops import forward_flops_per_sample, train_flops_per_step
from .paths import (agreement, first_stage, first_stage_counts, patch_effect, patch_profile, path_map,
                    total_variation)

__version__ = "0.1.0"
