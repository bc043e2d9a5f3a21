"""A step, declared once: its command, summary, settings, outputs and run.

    STEP = Step(name="validate", summary="...", settings=ValidateSettings, outputs=OUTPUTS, run=run)

in `rpops/steps/<name>/__init__.py` is all the CLI (`rpops validate --help`) and the Argo templates
(`workflows.common.step_container`) read: the flags come from the settings' fields, a template's
inputs and container arguments from the fields marked `parameter=...`, and its output parameters
(with the value a skipped step yields) from `outputs`. Nothing else lists a step's interface.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rpops.core.settings import base_type


@dataclass(frozen=True)
class Output:
    """An output parameter the step writes to `$RPOPS_OUTPUTS/<name>`; `default` is what a template
    yields when the step did not run (Argo fails a read of a skipped step's output without one)."""

    name: str
    default: str
    description: str


@dataclass(frozen=True)
class Parameter:
    """A template input fed to the step's flag of the same meaning."""

    name: str  # Argo's name, e.g. max-response-ms
    flag: str  # the step's flag, e.g. --max-response-ms
    description: str
    default: str | None  # None: required at submission
    enum: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{{{{inputs.parameters.{self.name}}}}}"


@dataclass(frozen=True)
class Step:
    name: str  # the command: `rpops <name>`
    summary: str  # one line, for `rpops --help` and the template's description
    settings: type  # a frozen dataclass of `rpops.core.settings.setting(...)` fields
    outputs: tuple[Output, ...]
    run: Callable[[Any], int | None]  # takes the settings value; returns the exit code (None: 0)
    epilog: str = ""  # --help's closing text: outputs and exit codes

    def parameters(self) -> tuple[Parameter, ...]:
        """The settings a template passes through, in field order."""
        hints = typing.get_type_hints(self.settings)
        found = []
        for field in dataclasses.fields(self.settings):
            name = field.metadata.get("parameter")
            if not name:
                continue
            if name is True:
                name = field.name.replace("_", "-")
            found.append(_parameter(field, str(name), base_type(hints[field.name])))
        return tuple(found)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters():
            if p.name == name:
                return p
        raise KeyError(f"step {self.name!r} has no parameter {name!r}")


def _parameter(field: dataclasses.Field[Any], name: str, tp: Any) -> Parameter:
    meta = field.metadata
    flag = meta.get("flag") or "--" + field.name.replace("_", "-")
    if field.default is not dataclasses.MISSING:
        default: Any = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = dataclasses.MISSING
    choices = tuple(meta.get("choices") or ())
    if tp is bool:
        choices = ("false", "true")
    if meta.get("template_required") or default is dataclasses.MISSING:
        text: str | None = None
    elif default is None or default == ():
        text = ""  # empty: the setting's "not given" (a container cannot drop an argument)
        choices = ("", *choices) if choices and "" not in choices else choices
    elif isinstance(default, bool):
        text = "true" if default else "false"
    elif isinstance(default, float):
        text = format(default, "g")  # 1000, 2.5
    else:
        text = str(default)
    if meta.get("template_default") is not None:
        text = meta["template_default"]
    return Parameter(name=name, flag=flag, description=meta["help"], default=text, enum=choices)


def load(package: str) -> Step:
    """The step declared by `package` (e.g. rpops.steps.health)."""
    step = importlib.import_module(package).STEP
    if not isinstance(step, Step):
        raise TypeError(f"{package}.STEP is not a Step")
    return step


def find(command: str) -> Step | None:
    """The step whose command is `command`, importing only the packages it can be: a step's command
    is its package's name, or starts with it and a dash (health -> health-check), so that
    `rpops validate ...` loads one step's declaration, not all of them."""
    import rpops.steps

    for info in pkgutil.iter_modules(rpops.steps.__path__):
        name = info.name.replace("_", "-")
        if info.ispkg and (command == name or command.startswith(name + "-")):
            step = load(f"rpops.steps.{info.name}")
            if step.name == command:
                return step
    return None


def discover() -> dict[str, str]:
    """Every step under rpops/steps/: command name -> package, in package order. A step is found by
    being there: the CLI and the templates need no list of their own."""
    import rpops.steps

    found = {}
    for info in sorted(pkgutil.iter_modules(rpops.steps.__path__), key=lambda i: i.name):
        if info.ispkg:
            package = f"rpops.steps.{info.name}"
            found[load(package).name] = package
    return found
