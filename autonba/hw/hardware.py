"""A template family's pieces by name (its default platform, its options, its engines) and the search
of a template bound to a workload: what the accelerator API and the joint search share."""
from __future__ import annotations

from typing import Any

import torch

from autonba.config import validate
from autonba.errors import AutonbaError
from autonba.hw.template import HardwareResult, HardwareTemplate
from autonba.hw.templates import TEMPLATES
from autonba.registry import Registry


def resolved_platform(template: str, platform: str | None) -> str:
    """The platform (or technology) name or path, the template's default when none is given."""
    return platform or TEMPLATES.get(template).default_platform


def engines_for(template: str) -> Registry:
    """The engine registry of a template's family."""
    return TEMPLATES.get(template).engines()


def load_hardware(template: str, platform: str | None, options: dict[str, Any]
                  ) -> tuple[type[HardwareTemplate], Any, dict[str, Any]]:
    """The template class, its loaded platform and its validated options: every name and option
    checked before any work is done."""
    cls = TEMPLATES.get(template)
    loaded = cls.load_platform(resolved_platform(template, platform))
    opts = validate(cls.Options, options, f"template '{template}' options")
    return cls, loaded, opts.model_dump(exclude_unset=True)


def search_template(template: HardwareTemplate, engine: str, seed: int = 0, budget: int | None = None,
                    fix: dict[str, int | float] | None = None, warm_start: Any = None,
                    progress: bool | None = None, **engine_options: Any) -> HardwareResult:
    """Search a template already bound to its workload and platform; an error if no design fits."""
    torch.manual_seed(seed)
    out = template.engines().get(engine)(template, template.space.fix(fix or {}), seed=seed, budget=budget,
                                         warm_start=warm_start, progress=progress, **engine_options).run()
    if out.best is None:
        raise AutonbaError(f"no design found by '{engine}' fits {template.budget_text()} for workload "
                           f"'{template.workload.name}'"
                           + ("" if engine == "exact" else "; try --engine exact to prove whether one exists"))
    return template.result(out.best, engine=engine, evaluations=out.evaluations, seconds=out.seconds,
                           trace=out.trace, info=out.info)
