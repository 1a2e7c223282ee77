"""What the `model` a client asks for means to the router.

- `auto` (or no model): the router's choice, no constraint.
- a configured alias (`modelAliases`): a minimum prompt tier and/or a set of targets.
- a priced model (`gpt-4o`, `claude-3-5-haiku-20241022`, ...): at least that model's tier, any target
  (`gpt-4` asks for premium quality; `gpt-3.5-turbo` is served by anything).
- a target's name, or an unpriced model a target serves (`tiny-llama`): that target, or those targets.
Anything else is unknown: a 404 `model_not_found`.
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config.model import Config
from extproc.routing.complexity import Tier
from extproc.routing.request import BadRequest
from extproc.routing.targets import Target


@dataclass(frozen=True, slots=True)
class ModelGroup:
    min_tier: Tier | None = None
    targets: frozenset[str] | None = None  # None: any target


ANY = ModelGroup()


def model_groups(config: Config, targets: tuple[Target, ...]) -> dict[str, ModelGroup]:
    groups: dict[str, ModelGroup] = {name: ModelGroup(min_tier=price.tier) for name, price in config.prices.items()}
    for target in targets:
        if target.model in config.prices:
            continue  # a priced model means "at least that tier", whoever serves it
        served_by = groups.get(target.model)
        already = served_by.targets if served_by and served_by.targets else frozenset()
        groups[target.model] = ModelGroup(targets=already | {target.name})
    groups.update({t.name: ModelGroup(targets=frozenset({t.name})) for t in targets})
    groups.update({alias.name: ModelGroup(alias.min_tier, alias.targets) for alias in config.model_aliases})
    groups["auto"] = ANY
    return groups


ROUTER_OWNER = "llm-router"
SELF_HOSTED_OWNER = "self-hosted"


def listed_models(config: Config, targets: tuple[Target, ...]) -> dict[str, str]:
    """The models a client can name, each once (model id -> owner, as GET /v1/models lists them): `auto`, the
    configured aliases, then every model a target serves (its provider's, or self-hosted for a cluster)."""
    listed = {"auto": ROUTER_OWNER} | {alias.name: ROUTER_OWNER for alias in config.model_aliases}
    for target in targets:
        listed.setdefault(target.model, SELF_HOSTED_OWNER if target.is_cluster else target.family)
    return listed


def unknown_model(model: str) -> BadRequest:
    """The 404 for a model the router neither serves nor knows (a request's `model`, GET /v1/models/{model})."""
    return BadRequest(
        f"The model `{model}` does not exist or is not served by this router. Use `auto` to let the router "
        "choose, or one of the models listed by GET /v1/models.",
        param="model",
        code="model_not_found",
        status=404,
    )
