"""The model variants of the paper and their control kinds: the one registry.

| name          | masking | composition | audio | control       | outputs |
|---------------|---------|-------------|-------|---------------|---------|
| centrifuge    |         |             |       |               | >= 2    |
| centrifuge_pc |         |             |       |               | >= 2    |
| c2_nomask     |         | yes         |       |               | >= 2    |
| c2            | yes     | yes         |       |               | >= 2    |
| c3_det        | yes     | yes         | yes   | deterministic | 2       |
| c3_internal   | yes     | yes         | yes   | internal      | >= 2    |

Control kinds (section 4.1): ``none`` (C2 and the Centrifuges), ``deterministic`` (V1 is forced
into O_1, equation 5) and ``internal`` (a regressor predicts which output holds V1, equation 6).
A controlled model takes V1's audio. Everything that names a variant or a control kind (the
configs, the builder, the objective, evaluation, the command lines) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from blendkit.typed_config import ConfigError, require

NO_CONTROL, DETERMINISTIC, INTERNAL = "none", "deterministic", "internal"
CONTROLS: tuple[str, ...] = (NO_CONTROL, DETERMINISTIC, INTERNAL)
MIN_OUTPUTS = 2  # one output per blended video at least


@dataclass(frozen=True)
class Variant:
    """Structural switches fixed by a model name, and what its objective needs."""

    masking: bool
    composition: bool
    control: str
    predictor_corrector: bool = False
    n_outputs: int | None = None  # the exact number of outputs its objective needs, if any


VARIANTS: dict[str, Variant] = {
    "centrifuge": Variant(masking=False, composition=False, control=NO_CONTROL),
    "centrifuge_pc": Variant(False, False, NO_CONTROL, predictor_corrector=True),
    "c2_nomask": Variant(masking=False, composition=True, control=NO_CONTROL),
    "c2": Variant(masking=True, composition=True, control=NO_CONTROL),
    "c3_det": Variant(masking=True, composition=True, control=DETERMINISTIC, n_outputs=2),
    "c3_internal": Variant(masking=True, composition=True, control=INTERNAL),
}
MODEL_NAMES: tuple[str, ...] = tuple(VARIANTS)
DEFAULT_MODEL = "c2"  # the paper's main network, and the presets'

# Minutes of one ``tiny`` run (900 steps, one torch thread) with a second run beside it on the
# 2-core build machine, as the last full ``make reproduce-tiny`` measured them (2026-12-01, n = 4
# outputs; c3_det 2). They order the schedule (longest first) and its printed plan, no more.
TINY_RUN_MINUTES: dict[str, float] = {
    "centrifuge": 3.2,
    "centrifuge_pc": 6.4,
    "c2_nomask": 4.4,
    "c2": 5.5,
    "c3_det": 5.4,
    "c3_internal": 7.0,
}


def variant(name: str) -> Variant:
    """The variant called ``name``; ``ConfigError`` (a ``ValueError``) for an unknown one."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return VARIANTS[name]


def control_of(name: str) -> str:
    """The control kind of model ``name``: one of ``CONTROLS``."""
    return variant(name).control


def is_controlled(name: str) -> bool:
    """Whether model ``name`` is controlled by V1's audio (C3)."""
    return control_of(name) != NO_CONTROL


def outputs_for(name: str, n_outputs: int) -> int:
    """The outputs model ``name`` trains with when ``n_outputs`` is asked of every model (a
    preset's n): the variant's exact n where it needs one (c3_det: 2), else ``n_outputs``."""
    exact = variant(name).n_outputs
    return n_outputs if exact is None else exact


def check_outputs(n_outputs: int, name: str | None = None, key: str = "n_outputs") -> None:
    """The rules on the number of outputs n, in one place: every model needs one output per
    blended video (n >= 2), and a variant may need an exact n (c3_det: 2, equation 5)."""
    require(n_outputs >= MIN_OUTPUTS, key, "needs at least 2 outputs for the two blended videos")
    exact = None if name is None else variant(name).n_outputs
    require(
        exact is None or n_outputs == exact,
        key,
        f"{control_of(name) if name else ''} control ({name}) needs exactly {exact} outputs",
    )
