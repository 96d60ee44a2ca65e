"""Which stages are tiled, with what tile and how long an L-BFGS history: the memory policy
behind ``--tile`` and ``--max-memory``. It estimates a stage's peak memory from the backbone's
layer geometry (:class:`~restyle.nn.network.LayerInfo`) and picks the tile; the tiled objective
itself is :mod:`restyle.engine.tiled`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from restyle.config import Config
from restyle.engine.loop import lbfgs_history
from restyle.engine.objective import Features, Objective
from restyle.engine.stopping import AUTO_CAP
from restyle.engine.tiled import TiledObjective
from restyle.engine.tiles import TiledFeatures, tiles
from restyle.errors import ConfigError
from restyle.nn import network

#: Calibration of the memory estimate: the process without images, bytes held per activation
#: value of one untiled forward + backward (x its dtype's size), and image-sized float32 RGB
#: buffers besides the L-BFGS history (the image, its gradient, snapshots, the optimiser's
#: vectors). Fitted to the peak RSS of untiled bf16 CPU runs (1.35 GB at 1024x681, 3.71 GB at
#: 2048x1362: 0.55 GB + 1.2 KB a pixel; docs/large.md); tiled runs come out below their estimate.
#: A matting Laplacian takes about 25 x 12 bytes a pixel, twice that while it is built.
RUNTIME_BYTES = 0.55 * 2**30
ACTIVATION_BYTES = {"bf16": 2.0, "fp32": 4.0, "tf32": 4.0}
ACTIVATION_FACTOR = 1.6
IMAGE_BUFFERS = 12
MATTING_BYTES_PER_PIXEL = 600
#: On CUDA the estimate bounds what torch allocates, less the process's runtime (H200, bf16, 5
#: steps, docs/large.md: 3.49 GB allocated at 2048x1362 against 3.92 estimated, 13.26 against
#: 14.02 at 4096x2725; in 1024 px tiles 1.95 against 2.73 and 4.31 against 5.04). The card holds
#: the CUDA context and library workspaces besides (1.19 GB above torch's reserve in the 8192 px
#: run), so a CUDA budget is --max-memory less that. torch's caching allocator reserved 1.23x its
#: allocations there (17.56 GB for 14.29: freed blocks it kept, on a card with 139 GB free); it
#: releases them when an allocation would otherwise fail, so they are left out of the budget.
CUDA_CONTEXT_BYTES = 1.2 * 2**30
#: The smallest tile --max-memory chooses: below it most of each tile's pass is halo (a 256 px
#: tile with the default layers' 96 px halo reads 448x448, 3.1x its area); a budget that needs
#: smaller tiles is refused before the run (:func:`check_budget`).
MIN_AUTO_TILE = 256
#: The share of the available memory ``--max-memory auto`` leaves unused: the estimate was up to 5%
#: under a measured peak (1.68 GB against 1.6 at 2048 px in 512 px tiles; docs/large.md), and
#: the rest is room for what other processes take meanwhile.
AUTO_MARGIN = 0.10
#: The fewest L-BFGS pairs ``--max-memory`` shrinks a stage's history to before it tiles (or tiles
#: smaller). bench/history.py (256 px, 100 iterations, 2 photos; docs/large.md): final loss
#: against 50 pairs' +2.4% with 10 pairs, +2.8% with 5, +5.4% with 3, +11.9% with 2 (medians);
#: tiling costs 1.4-2.5x the time a step instead, so a few percent of loss is the better trade.
BUDGET_MIN_PAIRS = 3


def activation_values(features: Features, layers: Sequence[str]) -> dict[str, float]:
    """Per layer of a forward up to the deepest of ``layers``, its activation values per input
    pixel: channels / stride²."""
    names = features.names
    last = max(names.index(n) for n in layers)
    info = features.info
    return {name: info[name].channels / info[name].stride ** 2 for name in names[: last + 1]}


def default_pairs(config: Config, size: tuple[int, int]) -> int:
    """L-BFGS pairs a stage of ``size`` keeps without a memory budget (0 for Adam)."""
    if config.optimizer == "adam":
        return 0
    cap = AUTO_CAP if config.iterations is None else config.iterations
    return min(lbfgs_history(torch.empty(1, 3, *size, device="meta")), max(1, cap - 1))


def estimate_bytes(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                   tile: int | None = None, pairs: int | None = None) -> float:
    """Peak memory of a stage of ``size`` = (height, width), untiled or in tiles of ``tile``: the
    activations of the image or of one tile's crop, the image-sized buffers (the optimiser's
    history of ``pairs`` pairs included; None: :func:`default_pairs`) and the content targets
    (float32 feature maps of the whole image)."""
    h, w = size
    halo, _ = network.halo(features.backbone, layers)
    crop = h * w if tile is None else min(h, tile + 2 * halo) * min(w, tile + 2 * halo)
    image = 12.0 * h * w
    if config.optimizer == "adam":
        pairs = 1  # Adam's two moment buffers
    elif pairs is None:
        pairs = default_pairs(config, size)
    values = activation_values(features, layers)
    act = sum(values.values()) * ACTIVATION_BYTES.get(features.precision, 4.0) * ACTIVATION_FACTOR
    targets = 4.0 * sum(values[n] for n in config.content_layers if n in values) * h * w
    photo = MATTING_BYTES_PER_PIXEL * h * w if config.photo_weight > 0 else 0.0
    buffers = image * (IMAGE_BUFFERS + 2 * pairs + (0 if tile is None else 2))
    return RUNTIME_BYTES + act * crop + buffers + targets + photo


def available_bytes(device: torch.device) -> float:
    """Memory a run on ``device`` may still take: on CUDA the card's free memory plus what torch holds
    unallocated; on the CPU the kernel's MemAvailable (RAM it can give without swapping)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_budget(config: Config, device: torch.device) -> float | None:
    """Bytes a stage's estimate may reach (None: no limit): ``--max-memory auto`` the memory available
    less ``AUTO_MARGIN``; a number of GB, on CUDA less the context's share, or the memory free for
    this run if that is less."""
    if config.max_memory is None:
        return None
    if config.max_memory == "auto":
        return available_bytes(device) * (1 - AUTO_MARGIN)
    budget = float(config.max_memory) * 2**30
    if device.type == "cuda":
        budget = max(0.0, min(budget - CUDA_CONTEXT_BYTES, available_bytes(device)))
    return budget


def budget_words(config: Config, budget: float) -> str:
    """The budget as messages name it."""
    if config.max_memory == "auto":
        return f"the {budget / 2**30:.1f} GB this machine has available (--max-memory auto)"
    return f"--max-memory {float(config.max_memory or 0):g} GB"


def check_budget(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int]) -> None:
    """Refuse (one line, before the run) a ``--max-memory`` that the stage of ``size`` cannot keep
    even in ``MIN_AUTO_TILE`` px tiles with ``BUDGET_MIN_PAIRS`` L-BFGS pairs."""
    budget = memory_budget(config, features.device)
    if budget is None or config.tile is not None:
        return
    least = min(BUDGET_MIN_PAIRS, default_pairs(config, size))
    tile = MIN_AUTO_TILE if max(size) > MIN_AUTO_TILE else None
    need = estimate_bytes(config, features, layers, size, tile, least)
    if need > budget:
        where = (f" ({budget / 2**30:.1f} GB once the CUDA context's {CUDA_CONTEXT_BYTES / 2**30:.1f} GB is set aside)"
                 if features.device.type == "cuda" and config.max_memory != "auto" else "")
        raise ConfigError(f"{budget_words(config, budget)} is too little for the {size[1]}x{size[0]} px stage"
                          f"{where}: {f'even in {tile} px tiles ' if tile else ''}it needs about {need / 2**30:.1f} GB "
                          f"(estimated); lower --size, or give --max-memory GB (none: no limit)")


def choose_tile(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                notes: list[str]) -> int | None:
    """The tile of a stage of ``size`` (None: untiled): ``--tile`` when the stage is larger;
    with ``--max-memory`` alone, none when the untiled estimate fits with at least
    ``BUDGET_MIN_PAIRS`` L-BFGS pairs, else the largest tile (the fewest tiles a side) whose
    estimate fits with them (:func:`history_pairs` then gives the history what is left)."""
    longest = max(size)
    if config.tile is not None:
        return config.tile if longest > config.tile else None
    budget = memory_budget(config, features.device)
    least = min(BUDGET_MIN_PAIRS, default_pairs(config, size))
    if budget is None or estimate_bytes(config, features, layers, size, pairs=least) <= budget:
        return None
    _, stride = network.halo(features.backbone, layers)
    tile = longest
    for count in range(2, longest // MIN_AUTO_TILE + 1):
        tile = max(MIN_AUTO_TILE, -(-longest // count // stride) * stride)
        if tile == MIN_AUTO_TILE or estimate_bytes(config, features, layers, size, tile, least) <= budget:
            break  # (a budget that even MIN_AUTO_TILE misses was refused before the run: check_budget)
    note = f"{longest} px stage tiled ({tile} px tiles) to stay within {budget_words(config, budget)}"
    if note not in notes:
        notes.append(note)
    return tile


def history_pairs(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                  tile: int | None, notes: list[str]) -> int | None:
    """L-BFGS pairs a stage keeps: None (the default rule, :func:`~.loop.lbfgs_history`) without
    ``--max-memory``; with it, as many of those as fit in what the stage's other buffers leave of
    the budget, at least ``BUDGET_MIN_PAIRS`` (bench/history.py measured the cost: docs/large.md)."""
    budget = memory_budget(config, features.device)
    full = default_pairs(config, size)
    if budget is None or full == 0:
        return None
    rest = budget - estimate_bytes(config, features, layers, size, tile, pairs=0)
    pairs = max(min(BUDGET_MIN_PAIRS, full), min(full, int(rest // (24.0 * size[0] * size[1]))))
    if pairs < full:
        note = f"{max(size)} px stage: {pairs} L-BFGS pairs (not {full}) to stay within {budget_words(config, budget)}"
        if note not in notes:
            notes.append(note)
    return pairs


def stage_features(config: Config, features: Features, layers: Sequence[str], image: Any,
                   notes: list[str]) -> Features:
    """The extractor of a stage whose content image is ``image`` (PIL image or tensor): ``features``
    itself, or a :class:`TiledFeatures` when the stage is tiled (:func:`choose_tile`)."""
    size = (int(image.shape[-2]), int(image.shape[-1])) if isinstance(image, torch.Tensor) else \
        (int(image.size[1]), int(image.size[0]))
    tile = choose_tile(config, features, layers, size, notes)
    if tile is None:
        return features
    halo, stride = network.halo(features.backbone, layers)
    note = (f"{max(size)} px stage: {len(tiles(size, tile, halo, stride))} tiles of up to {tile} px, "
            f"each read with a {halo} px halo")
    if note not in notes:
        notes.append(note)
    return TiledFeatures(features, tile)


def stage_objective(objective: Objective, features: Features) -> Objective:
    """The objective the stage optimises: tiled when its extractor is."""
    return TiledObjective.wrap(objective, features.tile) if isinstance(features, TiledFeatures) else objective
