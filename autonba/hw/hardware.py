"""A template family's pieces by name (its default platform, its options, its engines) and the search
of a template bound to a workload: what the accelerator API and the joint search share."""
from __future__ import annotations

from typing import Any

import torch

from autonba.config import validate
from autonba.errors import AutonbaError
from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.engines import ASIC_ENGINES
from autonba.hw.asic.result import AsicResult
from autonba.hw.asic.tech import load_technology
from autonba.hw.engines import ENGINES
from autonba.hw.platform import load_platform
from autonba.hw.result import AccelResult
from autonba.hw.templates import TEMPLATES, Template

DEFAULT_PLATFORM = {"fpga-legacy": "zc706-legacy", "asic-array": "generic-45nm"}


def resolved_platform(template: str, platform: str | None) -> str:
    """The platform (or technology) name or path, the template's default when none is given."""
    return platform or DEFAULT_PLATFORM.get(template, "zc706")


def engines_for(template: str | type):
    """The engine registry of a template's family (a template's name or class)."""
    cls = TEMPLATES.get(template) if isinstance(template, str) else template
    return ASIC_ENGINES if issubclass(cls, AsicArray) else ENGINES


def load_hardware(template: str, platform: str | None, options: dict[str, Any]) -> tuple[type, Any, dict[str, Any]]:
    """The template class, its loaded platform (technology for asic-array) and its validated options:
    every name and option checked before any work is done."""
    cls = TEMPLATES.get(template)
    name = resolved_platform(template, platform)
    loaded = load_technology(name) if cls is AsicArray else load_platform(name)
    opts = validate(cls.Options, options, f"template '{template}' options")
    return cls, loaded, opts.model_dump(exclude_unset=True)


def search_template(template: Template | AsicArray, engine: str, seed: int = 0, budget: int | None = None,
                    fix: dict[str, int | float] | None = None, warm_start: Any = None,
                    progress: bool | None = None, **engine_options: Any) -> AccelResult | AsicResult:
    """Search a template already bound to its workload and platform; an error if no design fits."""
    torch.manual_seed(seed)
    asic = isinstance(template, AsicArray)
    out = engines_for(type(template)).get(engine)(template, template.space.fix(fix or {}), seed=seed, budget=budget,
                              warm_start=warm_start, progress=progress, **engine_options).run()
    if asic:
        if out.best is None:
            area = template.options.area_mm2
            fits = "fits the area budget of " + (f"{area:g} mm2" if area is not None else
                                                 "(none) with every layer's tiles in its buffers")
            raise AutonbaError(f"no design found by '{engine}' {fits} for workload '{template.workload.name}'"
                               + ("" if engine == "exact" else "; try --engine exact to prove whether one exists"))
        return AsicResult.from_design(template, out.best, engine=engine, evaluations=out.evaluations,
                                      seconds=out.seconds, trace=out.trace, info=out.info)
    if out.best is None:
        dsp, bram = template.budgets
        raise AutonbaError(f"no design found by '{engine}' fits the budgets of {template.platform.name} "
                           f"({dsp:g} DSP, {bram:g} BRAM18K) for workload '{template.workload.name}'"
                           + ("" if engine == "exact" else "; try --engine exact to prove whether one exists"))
    return AccelResult.from_design(template, out.best, engine=engine, evaluations=out.evaluations,
                                   seconds=out.seconds, trace=out.trace, info=out.info)
