"""Coefficient models: the registry that maps a container's model id to the code that decodes it.

Every model that ever wrote an archive stays registered, so old archives decode after any upgrade.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from jpegshrink.errors import UnknownModel
from jpegshrink.model.base import CoefficientModel, ComponentSpec

_FACTORIES: dict[str, Callable[[], CoefficientModel]] = {}
_INSTANCES: dict[str, CoefficientModel] = {}

#: The model new containers are written with.
DEFAULT_MODEL_ID: str | None = "learned3-765581a5"


def register(model_id: str, factory: Callable[[], CoefficientModel]) -> None:
    """Make ``model_id`` decodable; ``factory`` is called lazily, once, on first use."""
    if model_id in _FACTORIES:
        raise ValueError(f"model id {model_id!r} registered twice")
    _FACTORIES[model_id] = factory


@contextmanager
def registered(model_id: str, factory: Callable[[], CoefficientModel]) -> Iterator[None]:
    """Register ``model_id`` for the length of a ``with`` block only (test doubles, experiments).

    Nothing written inside the block is meant to outlive it: a model that writes archives is
    registered for good with :func:`register`. Refuses an id that is already registered.
    """
    register(model_id, factory)
    try:
        yield
    finally:
        _FACTORIES.pop(model_id, None)
        _INSTANCES.pop(model_id, None)


def get(model_id: str) -> CoefficientModel:
    """The model that wrote ``model_id``; :class:`UnknownModel` if this version does not have it."""
    if model_id not in _INSTANCES:
        try:
            factory = _FACTORIES[model_id]
        except KeyError:
            raise UnknownModel(
                f"container was written with model {model_id!r}, which this jpegshrink does not have "
                f"(known: {', '.join(sorted(_FACTORIES)) or 'none'}); upgrade jpegshrink") from None
        _INSTANCES[model_id] = factory()
    return _INSTANCES[model_id]


def registered_ids() -> list[str]:
    """All model ids this version can decode, sorted."""
    return sorted(_FACTORIES)


def _adaptive_1() -> CoefficientModel:
    from jpegshrink.model.adaptive import AdaptiveModel  # lazy: imported on first use
    return AdaptiveModel()


def _learned(model_id: str):
    def factory() -> CoefficientModel:
        from jpegshrink.model.learned import load  # lazy: loads the weights on first use
        return load(model_id)
    return factory


def _priors(model_id: str):
    def factory() -> CoefficientModel:
        from jpegshrink.model.priors import load  # lazy: loads the statistics on first use
        return load(model_id)
    return factory


def _mix3_model(model_id: str):
    def factory() -> CoefficientModel:
        from jpegshrink.model.mix3 import load  # lazy: needs the compiled kernel, loads the weights
        return load(model_id)
    return factory


register("adaptive-1", _adaptive_1)
#: adaptive-1 with hints from a trained network; the id names its weights file (sha256 prefix).
register("learned-6165e90d", _learned("learned-6165e90d"))
#: adaptive-1 started from trained statistics (tools/train_priors.py); the id names its file (sha256 prefix).
register("learned2-c4d8c4e8", _priors("learned2-c4d8c4e8"))
#: learned2-c4d8c4e8's model and statistics with large components coded as one stream per pass, which
#: a decoder runs as a pipeline over block rows on several cores (same bits up to ~20 bytes a component).
register("learned2p-c4d8c4e8", _priors("learned2p-c4d8c4e8"))
#: learned2p's format with cross-channel hints: chroma contexts also see the co-located luma (pass p
#: of a chroma row after pass p of the luma rows it covers); statistics trained with those hints
#: (tools/train_priors.py fit --cross-channel). The weights file names both format flags.
register("learned3-6da68cd5", _priors("learned3-6da68cd5"))
#: learned3-6da68cd5's format plus cross-channel signs: chroma coefficient signs coded with the sign of
#: the co-located luma coefficient as one more context (the file's ``cross_sign`` flag).
register("learned3-765581a5", _priors("learned3-765581a5"))

#: model v3: mixed contexts, DCT-domain neighbour prediction, cross-channel, striped; C++ kernel
#: (mix3.py). The denser level: slower than learned2. The id names its trained-start file (sha256 prefix).
register("mix3-48305388", _mix3_model("mix3-48305388"))
#: mix3-48305388's trained start with seeded stripes (profile ``dense-seeded``): a band of 1/16 of the
#: MCU rows is coded first and every other stripe starts from its model's state.
register("mix3-03361b87", _mix3_model("mix3-03361b87"))
#: The denser level ("cold archive"): what `--level dense` picks.
DENSE_MODEL_ID: str = "mix3-03361b87"


__all__ = ["CoefficientModel", "ComponentSpec", "DEFAULT_MODEL_ID", "DENSE_MODEL_ID", "get", "register",
           "registered", "registered_ids"]
