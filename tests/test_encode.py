"""Token layouts and id scheme of the two model families."""
from __future__ import annotations

import numpy as np
import pytest

import grokcircuit as gc
from grokcircuit.data import vocab_size
from grokcircuit.encode import PAD, answer_position, bridge_token, encode, end_token, entity_token, relation_token

E, R = 7, 3
END = 1 + E + R + 3  # </a> is the 4th special token: <mask>, <sep>, <a>, </a>, <q>, </q>


def items() -> gc.Items:
    """Two two-hop queries then two atomic facts."""
    return gc.Items(h=np.array([0, 6, 2, 5]), r1=np.array([1, 2, 0, 2]), r2=np.array([2, 0, -1, -1]),
                    t=np.array([4, 0, 3, 6]), b=np.array([5, 1, -1, -1]))


def tok_e(e: int) -> int:
    return 1 + e


def tok_r(r: int) -> int:
    return 1 + E + r


def test_id_scheme():
    assert entity_token(0) == 1 and entity_token(E - 1) == E
    assert relation_token(0, E) == E + 1 and relation_token(R - 1, E) == E + R
    assert end_token(E, R) == END == 14
    assert PAD == 0
    names = gc.token_names(E, R)
    assert len(names) == vocab_size(E, R) == 1 + E + R + 6
    assert names[0] == "<pad>" and names[tok_e(3)] == "<e_3>" and names[tok_r(2)] == "<r_2>"
    assert names[END] == "</a>"
    # the reference numbering: <e_i> -> i + 1, <r_j> -> 2001 + j, </a> -> 2204 at 2000 entities / 200 relations
    assert relation_token(0, 2000) == 2001 and end_token(2000, 200) == 2204


def test_trm_layout():
    tokens, labels = encode(items(), "trm", E, R)
    assert tokens.shape == labels.shape == (4, 5)
    assert tokens.dtype == labels.dtype == np.int64
    assert tokens[0].tolist() == [tok_e(0), tok_r(1), tok_r(2), PAD, PAD]
    assert labels[0].tolist() == [tok_e(0), tok_r(1), tok_r(2), tok_e(4), END]
    assert tokens[1].tolist() == [tok_e(6), tok_r(2), tok_r(0), PAD, PAD]
    assert labels[1].tolist() == [tok_e(6), tok_r(2), tok_r(0), tok_e(0), END]
    assert tokens[2].tolist() == [tok_e(2), tok_r(0), PAD, PAD, PAD]
    assert labels[2].tolist() == [tok_e(2), tok_r(0), tok_e(3), END, PAD]
    assert tokens[3].tolist() == [tok_e(5), tok_r(2), PAD, PAD, PAD]
    assert labels[3].tolist() == [tok_e(5), tok_r(2), tok_e(6), END, PAD]


def test_causal_layout():
    tokens, labels = encode(items(), "causal", E, R)
    assert tokens.shape == labels.shape == (4, 3)
    assert tokens[0].tolist() == [tok_e(0), tok_r(1), tok_r(2)]
    assert labels[0].tolist() == [PAD, PAD, tok_e(4)]  # answer read at the last input token
    assert tokens[2].tolist() == [tok_e(2), tok_r(0), PAD]
    assert labels[2].tolist() == [PAD, tok_e(3), PAD]
    assert labels[3].tolist() == [PAD, tok_e(6), PAD]


def test_answer_position():
    assert answer_position(items(), "trm").tolist() == [3, 3, 2, 2]
    assert answer_position(items(), "causal").tolist() == [2, 2, 1, 1]
    for layout in ("trm", "causal"):
        tokens, labels = encode(items(), layout, E, R)
        pos = answer_position(items(), layout)
        assert (labels[np.arange(4), pos] == items().t + 1).all()


def test_bridge_token():
    assert bridge_token(items(), E).tolist() == [tok_e(5), tok_e(1), PAD, PAD]


def test_layout_of_and_bad_layout():
    from grokcircuit.encode import layout_of
    assert layout_of("trm") == "trm" and layout_of("looped") == "causal"
    with pytest.raises(ValueError, match="layout"):
        encode(items(), "gpt", E, R)


def test_encoding_a_real_dataset_stays_in_vocabulary():
    ds = gc.make_dataset(gc.DataConfig(entities=50, relations=10, out_degree=5, ood_fraction=0.1, phi=2.0,
                                       regime="both_hop_full", aug_k=4))
    V = ds.vocab_size
    for layout in ("trm", "causal"):
        tokens, labels = encode(ds.train, layout, 50, 10)
        assert tokens.min() >= 0 and tokens.max() < V and labels.max() < V
        inferred = ds.train.is_inferred
        # entities in entity slots, relations in relation slots
        assert ((tokens[:, 0] >= 1) & (tokens[:, 0] <= 50)).all()
        assert ((tokens[:, 1] > 50) & (tokens[:, 1] <= 60)).all()
        assert ((tokens[inferred, 2] > 50) & (tokens[inferred, 2] <= 60)).all()
        assert (tokens[~inferred, 2] == PAD).all()
        assert ((labels != 0).sum(1) == ((inferred + 4) if layout == "trm" else 1)).all()
