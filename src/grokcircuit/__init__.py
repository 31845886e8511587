"""grokcircuit: a reproduction of "Is Grokking Worthwhile?" (He et al., 2026)."""

__version__ = "0.1.0"
