"""The flow loader and expressions for the runtime tests.

ivr.loader and ivr.expressions are written in parallel; until they land the
tests use this tiny stand-in with the same names (to be deleted then).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ivr.runtime import CompiledExpressions

try:
    from ivr.loader import load_flowset  # type: ignore[import-not-found]
except ImportError:
    from ruamel.yaml import YAML

    from ivr.model import Flow, Routes

    class _FlowSet:
        def __init__(self, flows: dict[str, Flow], routes: Routes) -> None:
            self.flows = flows
            self.routes = routes
            self.queues: dict[str, Any] = {}
            self.digest = "fallback"

        def flow_for(self, number: str) -> Flow:
            for route in self.routes.routes:
                if route.number in (number, "*"):
                    return self.flows[route.flow]
            if self.routes.default:
                return self.flows[self.routes.default]
            raise LookupError(f"no route for {number!r}")

    def load_flowset(folder: Path, sounds: Any = None) -> Any:  # type: ignore[misc]
        flows: dict[str, Flow] = {}
        routes = Routes()
        for path in sorted(Path(folder).glob("*.yaml")):
            data = YAML(typ="safe").load(path.read_text())
            if path.name == "routes.yaml":
                routes = Routes.model_validate(data)
            elif not path.name.endswith(".test.yaml"):
                flow = Flow.model_validate(data)
                flows[flow.flow] = flow
        return _FlowSet(flows, routes)


def expressions() -> CompiledExpressions:
    """The real compiled expressions, else a sandboxed Jinja stand-in."""
    try:
        return CompiledExpressions()
    except ImportError:
        pass
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment()

    def expr(src: str) -> Callable[[Mapping[str, Any]], Any]:
        fn = env.compile_expression(src)
        return lambda scope: fn(**scope)

    def cond(src: str) -> Callable[[Mapping[str, Any]], Any]:
        fn = env.compile_expression(src)
        return lambda scope: bool(fn(**scope))

    def tmpl(src: str) -> Callable[[Mapping[str, Any]], Any]:
        t = env.from_string(src)
        return lambda scope: t.render(**scope)

    return CompiledExpressions(condition=cond, value=expr, template=tmpl)


__all__ = ["expressions", "load_flowset"]
