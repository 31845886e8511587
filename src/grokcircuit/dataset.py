"""One regime's dataset, assembled from the graph (`data`) and the augmentation (`augment`): `make_dataset(cfg)`."""
from __future__ import annotations

import numpy as np

from .augment import augment
from .config import DataConfig
from .data import (_PROBES, _TRAIN_PROBE, PROBES, Items, KGDataset, choose, downsample_inferred, make_graph,
                   split_paths, stream)


def make_dataset(cfg: DataConfig) -> KGDataset:
    """The full dataset of one regime: train items, probes and the graph."""
    cfg.validate()
    g = make_graph(cfg)
    pool, test_iid, test_ood = split_paths(cfg, g)
    inferred = downsample_inferred(cfg, g, pool)
    hop1, hop2 = augment(g, test_ood, cfg)
    atomic = g.facts()
    train_inferred = Items.concat([inferred, hop1, hop2])
    train = Items.concat([atomic, train_inferred])

    rng = stream(cfg.seed, _PROBES)
    id_idx, ood_idx = np.flatnonzero(~g.ood), np.flatnonzero(g.ood)
    probes = {
        "id_atomic": g.facts(id_idx[choose(rng, len(id_idx), cfg.probe_size)]),
        "ood_atomic": g.facts(ood_idx[choose(rng, len(ood_idx), cfg.probe_size)]),
        "test_inferred_iid": test_iid.take(choose(rng, len(test_iid), cfg.probe_size)),
        "test_inferred_ood": test_ood.take(choose(rng, len(test_ood), cfg.probe_size)),
        "train_inferred": train_inferred.take(
            choose(stream(cfg.seed, _TRAIN_PROBE), len(train_inferred), cfg.probe_size)),
    }
    probes = {name: probes[name] for name in PROBES}
    counts = {
        "atomic": len(atomic), "id_atomic": int(len(id_idx)), "ood_atomic": int(len(ood_idx)),
        "two_hop_paths": len(g.head) * g.out_degree, "train_pool": len(pool),
        "train_inferred": len(inferred), "augmented_hop1": len(hop1), "augmented_hop2": len(hop2),
        "train_items": len(train), "test_inferred_iid": len(test_iid), "test_inferred_ood": len(test_ood),
        **{f"probe_{k}": len(v) for k, v in probes.items()},
    }
    return KGDataset(cfg, g, train, probes, test_ood, test_iid, counts)
