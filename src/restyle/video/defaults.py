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
#: ``--flow``'s default with ``--fast-model``: at blend 0.5 on that clip the warping error is the
#: same with each preset (0.00078 ultrafast, 0.00075 fast, 0.00076 medium, the bundled model) and both
#: flows with the masks and the warp take 4.6 / 8.4 / 13.7 ms a frame at 256 px, beside the network's 22.
DEFAULT_FAST_FLOW_PRESET = "ultrafast"
#: ``--temporal-blend``'s default (with ``--fast-model``): the weight of the previous output frame,
#: warped by the optical flow, where the flow is reliable (see :mod:`restyle.video.fastframes`).
#: Measured by bench/fast/video.py (48 frames of a 256 px pan and zoom, the bundled model): the
#: warping error is 0.39 / 0.18 / 0.08 / 0.04 of independent frames' at 0.3 / 0.5 / 0.7 / 0.9, the
#: texture's total variation 86 / 80 / 76 / 72%. At 0.5 consecutive
#: frames look alike where independent ones redraw the brush marks; from 0.7 the marks go soft,
#: at 0.9 they smear along the motion.
DEFAULT_TEMPORAL_BLEND = 0.5
#: Constant rate factor (libx264/libvpx-vp9 quality: lower is better; 18 looks lossless for most).
DEFAULT_CRF = 18
