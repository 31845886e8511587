"""Shared test helpers."""
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run faster on one thread, and far faster when another process shares the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.isin(a, b) through a sorted search (np.isin is much slower on large int64 arrays here)."""
    if len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    s = np.sort(b)
    i = np.minimum(np.searchsorted(s, a), len(s) - 1)
    return s[i] == a
