"""claude-config as a deployed stack's runtime loads it (`agentbot doctor --stack`): with the
runtime function's own environment, read from Lambda, so an mcp.json ``${NAME}`` that a cold
start cannot fill (``${ANTHROPIC_BASE_URL}`` in a stack without a gateway) is named with the
stack parameter that fills it, before any chat meets it.

The function's variables are what the last deploy made of the stack's parameters, so reading
them is truer than mapping the parameters again here (and stays right when the template
changes). No value is ever shown: a gateway URL may carry a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .preflight import ConfigurationProblem, fix_for

if TYPE_CHECKING:
    from agent_runtime import ClaudeConfigError

# infra/template.yaml's FunctionName of the runtime
RUNTIME_FUNCTION = "{bot}-runtime"


def runtime_environment(lambda_client: Any, function_name: str) -> dict[str, str]:
    """The environment the stack's runtime containers (of ``function_name``, see
    ``RUNTIME_FUNCTION``) start with: the function's variables (lambda:GetFunctionConfiguration)
    with the image's and Lambda's own."""
    from agent_runtime import lambda_started_environment

    function = lambda_client.get_function_configuration(FunctionName=function_name)
    return lambda_started_environment(function.get("Environment", {}).get("Variables", {}))


def deployed_problems(exc: ClaudeConfigError, environment: Mapping[str, str]) -> list[ConfigurationProblem]:
    """claude-config's problems as found with the stack's runtime environment, each with its
    fix; one a ``${NAME}`` made says what the runtime holds, and when the runtime leaves it
    empty, which stack parameter fills it."""
    from agent_runtime import config_problem

    found = []
    for problem in exc.problems:
        where, reason = config_problem(problem)
        fix = fix_for(problem, deployed=True)
        if problem.variables:
            held = ", ".join(_held(name, environment) for name in problem.variables)
            reason += f"; in the stack's runtime {held}"
            # a value that is there but does not fit is the file's to change
            if unfilled := [name for name in problem.variables if not environment.get(name)]:
                fix = _unfilled_fix(unfilled)
        found.append(ConfigurationProblem(where, reason, fix))
    return found


def _parameter_of(name: str) -> str | None:
    from agent_runtime import DEPLOYED_VARIABLES

    variable = DEPLOYED_VARIABLES.get(name)
    return variable.parameter if variable is not None else None


def _held(name: str, environment: Mapping[str, str]) -> str:
    """What the runtime holds for ``${name}``, as a state, never the value."""
    state = "is not set" if name not in environment else "is empty" if not environment[name] else "is set"
    parameter = _parameter_of(name)
    return f"${{{name}}} {state}" + (f" (from the stack's {parameter} parameter)" if parameter else "")


def _unfilled_fix(names: list[str]) -> str:
    default = f"write a default in the file that works without it (${{{names[0]}:-...}})"
    parameters = list(dict.fromkeys(p for name in names if (p := _parameter_of(name))))
    if not parameters:  # nothing the operator deploys sets it: only the file can
        return f"{default}, then `sam build && sam deploy` (no parameter of the stack sets it)"
    overrides = " ".join(f"{p}=..." for p in parameters)
    return (
        f"deploy with {' and '.join(parameters)} set (sam deploy --parameter-overrides {overrides}), "
        f"or {default} and `sam build && sam deploy`"
    )
