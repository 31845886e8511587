"""Linear probes for the bridge entity: a readout of the bridge that does not go through the model's own head.

The logit lens asks whether the bridge b is the *top-1 token* of a state decoded by the output head; a model can
hold b in a state without writing it onto b's unembedding direction (the TRM's untied head, or a looped model's
intermediate code). A linear probe asks whether b is *linearly decodable* from the state at all.

`probe_stages(model, train, evals)` fits one probe per stage on the states of training compositions, with
scikit-learn's `RidgeClassifierCV` (one-vs-rest least squares; its ridge penalty chosen by efficient
leave-one-out cross-validation) on standardised features, and scores it on held-out ID and OOD queries. The
features of a stage are its composition cells (`lens.composition_cells`): every position of the TRM, and the
answer slot of the causal model, where b is not the atomic query's own answer. A bridge never seen as a training
bridge cannot be predicted, so OOD accuracy is bounded by the share of OOD queries whose bridge is a class.
The chance level is the same probe on the untrained model (a run's step-0 evaluation).

Entry points: `stage_states`, `probe_stages`, `bridge_probe`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .lens import EVAL_BATCH, Queries, composition_cells
from .model import autocast_for

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


@torch.no_grad()
def stage_states(model: torch.nn.Module, q: Queries) -> tuple[list[str], np.ndarray]:
    """Stage names and the states of every query as float32 (S, N, T, D)."""
    model.eval()
    parts, stages = [], []
    for i in range(0, len(q), EVAL_BATCH):
        with autocast_for(q.tokens.device):
            trace = model(q.tokens[i:i + EVAL_BATCH], trace=True).trace
        stages = list(trace)
        parts.append(torch.stack(list(trace.values())).float().cpu())
    return stages, torch.cat(parts, dim=1).numpy()


def probe_stages(model: torch.nn.Module, train: Queries, evals: dict[str, Queries]) -> pd.DataFrame:
    """Tidy (stage, split, accuracy, n): a probe per stage fit on `train`, scored on each split of `evals`."""
    stages, x_train = stage_states(model, train)
    cells = composition_cells(stages, x_train.shape[2])
    x_evals = {name: stage_states(model, q)[1] for name, q in evals.items() if len(q)}
    rows = []
    for s, stage in enumerate(stages):
        if not cells[s].any():
            continue
        features = lambda x: x[s][:, cells[s]].reshape(x.shape[1], -1)  # noqa: E731  (N, positions * D)
        probe = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=ALPHAS))
        probe.fit(features(x_train), train.items.b)
        for name, x in x_evals.items():
            hit = probe.predict(features(x)) == evals[name].items.b
            rows.append({"stage": stage, "split": name, "accuracy": float(hit.mean()), "n": len(hit)})
    return pd.DataFrame(rows, columns=["stage", "split", "accuracy", "n"])


def bridge_probe(frame: pd.DataFrame) -> dict[str, float]:
    """Per split: the best stage's probe accuracy."""
    return frame.groupby("split")["accuracy"].max().to_dict()
