"""The one rule for a fast model's style blend, shared by the PyTorch model (``restyle.methods.fastmodel``),
the ONNX runner (``restyle.fastonnx``) and the server's option check: one weight per style the model holds,
each >= 0 and not all 0."""

from __future__ import annotations

from collections.abc import Sequence

from restyle.errors import ConfigError


def blend_weights(blend: Sequence[float], styles: Sequence[str], *, what: str = "--blend",
                  holder: str = "the fast model") -> list[float]:
    """``blend`` as floats once it fits ``styles`` (the model's, in blend order), else a ConfigError that
    names ``what`` (the option or thing that gave the weights) and ``holder`` (the model). Not normalised:
    each caller divides by the sum in its own number type."""
    weights = [float(w) for w in blend]
    if len(weights) != len(styles):
        raise ConfigError(f"{what} has {len(weights)} weight(s) but {holder} holds {len(styles)} style(s) "
                          f"({', '.join(styles)}): give one weight each")
    if any(not (w >= 0) for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"{what} weights must be >= 0 and not all 0")
    return weights
