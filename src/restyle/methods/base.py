"""The method seam: what a method is (:class:`Method`) and what it declares about itself
(:class:`MethodOption`, ``paintings``, ``owns``, ``iterative``). Front-ends, executors, batches,
studies, videos and the server reach every method through :mod:`restyle.methods.registry` and ask
it these questions; none of them names a method's fields."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from restyle.config import Config, check_style_blend
from restyle.engine.events import IterationHandler
from restyle.errors import ConfigError

if TYPE_CHECKING:  # the declarations load no torch: the command line's parsers read them
    import torch
    import torch.nn as nn

    from restyle.engine import Result
    from restyle.engine.events import EventHandler

#: What a method takes besides the photo: style images ("required"), none (its styles are a model's),
#: or either ("optional").
Paintings = Literal["required", "none", "optional"]


@dataclass(frozen=True)
class MethodOption:
    """An option an installed method declares for itself (kept in ``Config.method_options``):
    shown by ``--help`` (``--NAME``), offered by ``GET /api/options``; ``file``: its value names a
    file the run reads (a task shipped to a worker process or Ray node carries it)."""

    name: str
    help: str
    default: Any = None
    type: type = str
    file: bool = False
    metavar: str | None = None
    choices: tuple[str, ...] | None = None  # the values it takes (the HTTP schema lists them)
    minimum: int | None = None  # the least value of a number option (the HTTP schema states it)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@runtime_checkable
class Method(Protocol):
    """A way of stylising an image.

    Declarations (class attributes):

    - ``name`` (what ``--method`` takes) and ``summary`` (one line for help and the page);
    - ``paintings``: which style images it takes (:data:`Paintings`);
    - ``owns``: the :class:`~restyle.config.Config` fields that belong to it (setting one picks it
      when no ``--method`` is given; giving one to another method is an error);
    - ``one_pass``: whether its picture comes from one forward pass (a video then blends its frames
      along the optical flow instead of optimising each against the one before);
    - ``options``: its own further options (:class:`MethodOption`, in ``Config.method_options``);
    - ``iterative(config)``: whether it optimises (stops on its own, estimates its time left, writes a loss
      history, takes a start image and extra loss terms); a method that is not makes one pass.

    ``check(config, paintings)`` refuses a request it cannot run with a one-line
    :class:`~restyle.errors.ConfigError`; ``files(config)`` lists (role, path) of the files its
    own options name. The run record names the method by the config it ran (``method``, its own
    options in ``method_options``) and hashes those files.

    Contract of ``run(content, styles, config, *, on_event, on_iteration, start, terms)``:

    - ``content``: one image; ``styles``: zero or more; each a path, PIL image, ``H x W x 3`` array
      or tensor, loaded with :func:`restyle.io.images.load_image` (its one-line errors).
    - Bad input raises a one-line :class:`~restyle.errors.RestyleError` before the first event.
    - ``on_event`` receives :class:`~restyle.engine.events.Started` first, then one
      :class:`~restyle.engine.events.Progress` per history row, then
      :class:`~restyle.engine.events.Finished`, all from the calling thread; ``on_iteration(row,
      image)`` gets the same rows as dicts of :data:`restyle.io.history.HISTORY_FIELDS`.
    - ``start`` (``1 x 3 x H x W`` in [0, 1]) is an image to begin from and ``terms`` extra loss
      modules, for iterative methods; a one-pass method ignores both.
    - Returns a :class:`~restyle.engine.Result` at the config's size; writes no files; carries no
      state from one run into the next.
    """

    name: str
    summary: str
    paintings: Paintings
    owns: tuple[str, ...]
    options: tuple[MethodOption, ...]
    one_pass: bool

    def iterative(self, config: Config) -> bool: ...

    def check(self, config: Config, paintings: int) -> None: ...

    def files(self, config: Config) -> list[tuple[str, str]]: ...

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result: ...


class MethodBase:
    """Defaults for the declarations and checks: a method that takes paintings needs at least
    one and a ``--style-blend`` weight per painting; one that takes none refuses them."""

    name = ""
    summary = ""
    paintings: Paintings = "required"
    owns: tuple[str, ...] = ()
    options: tuple[MethodOption, ...] = ()
    one_pass = True

    def iterative(self, config: Config) -> bool:
        return False

    def check(self, config: Config, paintings: int) -> None:
        if self.paintings == "none" and paintings:
            raise ConfigError(f"--method {self.name} takes no style images (its styles come with its model): "
                              "give the content image alone")
        if self.paintings == "required" and not paintings:
            raise ConfigError(f"--method {self.name} needs at least one style image")
        if self.paintings == "required":
            check_style_blend(config.style_blend, paintings)

    def files(self, config: Config) -> list[tuple[str, str]]:
        out = []
        for opt in self.options:
            value = config.method_options.get(opt.name)
            if opt.file and isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
                out.append((opt.name.replace("_", " "), os.fspath(value)))
        return out
