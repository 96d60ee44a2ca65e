"""The video run's defaults, in one module that imports nothing, so ``restyle video --help`` states
them without importing torch, PyAV or OpenCV (:mod:`restyle.cli.video`), and the modules that use
them (:mod:`.stylize`, :mod:`.flow`, :mod:`.sink`) read the same values."""

from __future__ import annotations

#: ``--temporal-weight``'s default: on the docs/video.md clip the warping error falls to 1/26 of
#: independent frames', the style distance unchanged; 10x less gives twice the error, 10x more
#: little less error and a little less style.
DEFAULT_TEMPORAL_WEIGHT = 1e3
#: Each frame's iterations when not given: the automatic stop (a later frame starts from the one
#: before it, warped, and stops sooner than a photo from scratch).
DEFAULT_ITERATIONS: int | None = None
#: How many times ``--iterations`` N the first frame gets (it starts from the content).
FIRST_FRAME_FACTOR = 3
#: DIS optical-flow presets by name (OpenCV's ``DISOPTICAL_FLOW_PRESET_*``), and ``--flow``'s default.
FLOW_PRESETS = ("ultrafast", "fast", "medium")
DEFAULT_FLOW_PRESET = "medium"
#: ``--flow``'s default with ``--fast-model`` (see :data:`DEFAULT_TEMPORAL_BLEND`).
DEFAULT_FAST_FLOW_PRESET = "ultrafast"
#: ``--temporal-blend``'s default (with ``--fast-model``): the weight of the previous output frame,
#: warped by the optical flow, where the flow is reliable (see :mod:`restyle.video.fastframes`).
DEFAULT_TEMPORAL_BLEND = 0.5
#: Constant rate factor (libx264/libvpx-vp9 quality: lower is better; 18 looks lossless for most).
DEFAULT_CRF = 18
