"""Reading infra/template.yaml and the Lambda code for the template cross-checks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def _repo_root() -> Path:
    # The workspace installs this package editable, so the checkout is above this file.
    for parent in Path(__file__).resolve().parents:
        if (parent / "infra" / "template.yaml").is_file():
            return parent
    raise FileNotFoundError(
        f"infra/template.yaml not found above {__file__}: install agentbot-testing from the "
        "workspace (`uv sync`), not from a built wheel"
    )


ROOT = _repo_root()
TEMPLATE = ROOT / "infra" / "template.yaml"
PACKAGES = ROOT / "packages"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags turned into their long JSON form."""


def _cfn_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)  # YAML's only other kind of node
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data (intrinsics in their ``{"Fn::X": ...}`` form)."""
    with path.open(encoding="utf-8") as fh:
        template: dict[str, Any] = yaml.load(fh, Loader=_CfnLoader)
    return template


@dataclass(frozen=True)
class LambdaFunction:
    """One function of the template with what the cross-checks need."""

    logical_id: str
    properties: dict[str, Any]
    metadata: dict[str, Any]
    environment: dict[str, Any]  # Globals merged with the function's own variables

    @property
    def handler(self) -> str:
        if self.properties.get("PackageType") == "Image":
            return str(self.properties["ImageConfig"]["Command"][0])
        return str(self.properties["Handler"])

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def package_dir(self) -> Path:
        """The workspace package whose code runs in this function (by the handler's top module)."""
        top = self.handler.split(".", 1)[0]
        found = [p for p in PACKAGES.glob("*/src/*") if p.name == top]
        if len(found) != 1:
            raise LookupError(f"{self.logical_id}: no single package provides {top!r} ({found})")
        return found[0].parents[1]


def functions(template: dict[str, Any]) -> dict[str, LambdaFunction]:
    """Every AWS::Serverless::Function, keyed by logical id."""
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        found[logical_id] = LambdaFunction(logical_id, props, resource.get("Metadata", {}), env)
    return found


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]
    return found


def condition_holds(template: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    """Whether the template's condition ``name`` holds for these parameter values, evaluated as
    CloudFormation does: a ``Ref`` to a parameter is the string given (a Number too), defaults
    fill the rest. Knows the functions a condition may use on parameters."""
    values = {
        key: str(spec.get("Default", "")) for key, spec in template.get("Parameters", {}).items()
    } | parameters

    def value(node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return [value(item) for item in node]
        ((function, argument),) = node.items()
        if function == "Ref":
            return values[argument]
        if function == "Condition":
            return holds(template["Conditions"][argument])
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(value(items))
        if function == "Fn::Split":
            separator, text = argument
            return value(text).split(separator)
        if function == "Fn::Select":
            index, items = argument
            return value(items)[int(value(index))]
        return holds(node)

    def holds(node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Condition":
            return holds(template["Conditions"][argument])
        if function == "Fn::Equals":
            left, right = value(argument)
            return bool(left == right)
        if function == "Fn::Not":
            return not holds(argument[0])
        if function == "Fn::And":
            return all(holds(item) for item in argument)
        if function == "Fn::Or":
            return any(holds(item) for item in argument)
        raise ValueError(f"{function} is not a condition function")

    return holds(template["Conditions"][name])


def policy_statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a role's inline policies, ``Fn::If`` branches included."""
    for policy in role["Properties"].get("Policies", []):
        yield from flatten_statements(policy["PolicyDocument"]["Statement"])


def flatten_statements(statements: list[Any]) -> Iterator[dict[str, Any]]:
    for statement in statements:
        if isinstance(statement, dict) and "Fn::If" in statement:
            _, yes, no = statement["Fn::If"]
            yield from flatten_statements([s for s in (yes, no) if s != {"Ref": "AWS::NoValue"}])
        else:
            yield statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------ environment variables read


# Helpers that take a variable name as their first argument (session_core's and common ones).
_KNOWN_ACCESSORS = {
    name: 0 for name in ("getenv", "require_env", "env_int", "env_bool", "env_str", "env_float", "env_list")
}
_ENVIRON_NAMES = frozenset({"environ", "env", "environment"})  # os.environ by convention
_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_env_name(value: object) -> bool:
    return isinstance(value, str) and len(value) > 1 and value[0].isalpha() and set(value) <= _ENV_NAME_CHARS


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


class _Module:
    """One parsed module: its string constants, environ aliases and functions."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.constants: dict[str, str] = {}
        self.aliases: set[str] = set(_ENVIRON_NAMES)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                if not isinstance(target, ast.Name):
                    continue
                if isinstance(value, ast.Constant) and _is_env_name(value.value):
                    self.constants[target.id] = str(value.value)
                if self.is_environ(value):
                    self.aliases.add(target.id)

    def is_environ(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            return True
        if isinstance(node, ast.IfExp):  # `os.environ if environ is None else environ`
            return self.is_environ(node.body) or self.is_environ(node.orelse)
        if isinstance(node, ast.BoolOp):  # `environ or os.environ`
            return any(self.is_environ(v) for v in node.values)
        return isinstance(node, ast.Name) and node.id in getattr(self, "aliases", _ENVIRON_NAMES)

    def key_reads(self, accessors: dict[str, int]) -> Iterator[tuple[ast.AST, ast.AST]]:
        """(scope node, key expression) for every read of the environment in this module."""
        for scope in ast.walk(self.tree):
            if not isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for node in _own_nodes(scope):
                if isinstance(node, ast.Call):
                    name = _call_name(node.func)
                    via_environ = (
                        name == "get"
                        and isinstance(node.func, ast.Attribute)
                        and self.is_environ(node.func.value)
                    )
                    index = 0 if via_environ else accessors.get(name)
                    if index is not None and len(node.args) > index:
                        yield scope, node.args[index]
                elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                    if self.is_environ(node.value):
                        yield scope, node.slice
                elif (
                    isinstance(node, ast.Compare)
                    and len(node.ops) == 1
                    and isinstance(node.ops[0], ast.In | ast.NotIn)
                    and self.is_environ(node.comparators[0])
                ):
                    yield scope, node.left

    def constant(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and _is_env_name(node.value):
            return str(node.value)
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        return None


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a scope, not descending into nested functions (they are scopes of their own)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def _infer_accessors(modules: list[_Module]) -> dict[str, int]:
    """Functions that read the environment with one of their parameters as the name
    (``def opt(name): return env.get(name)``), found to a fixed point so helpers of helpers count."""
    accessors = dict(_KNOWN_ACCESSORS)
    while True:
        before = dict(accessors)
        for module in modules:
            for scope, key in module.key_reads(accessors):
                if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) or not isinstance(
                    key, ast.Name
                ):
                    continue
                params = [a.arg for a in scope.args.posonlyargs + scope.args.args]
                if key.id in params and scope.name not in accessors:
                    accessors[scope.name] = params.index(key.id)
        if accessors == before:
            return accessors


def env_reads_in_sources(sources: dict[Path, str]) -> dict[str, set[Path]]:
    """Variable name -> files that read it, over a set of modules analysed together.

    Recognised: ``os.environ[...]`` (read, not assigned), ``os.environ.get(...)``,
    ``os.getenv(...)``, ``"X" in os.environ``, session-core's ``require_env`` / ``env_int``,
    aliases (``env = os.environ``, or a parameter named ``env``/``environ``) and any helper
    that passes one of its parameters on as the name. Names may be literals or module constants.
    """
    modules = {path: _Module(source) for path, source in sources.items()}
    accessors = _infer_accessors(list(modules.values()))
    reads: dict[str, set[Path]] = {}
    for path, module in modules.items():
        for _, key in module.key_reads(accessors):
            name = module.constant(key)
            if name:
                reads.setdefault(name, set()).add(path)
    return reads


def env_reads_in_source(source: str) -> set[str]:
    """Environment variable names one module's source reads."""
    return set(env_reads_in_sources({Path("module.py"): source}))


def env_reads(src_dir: Path) -> dict[str, set[Path]]:
    """Variable name -> files under ``src_dir`` that read it."""
    sources = {
        path.relative_to(ROOT): path.read_text(encoding="utf-8") for path in sorted(src_dir.rglob("*.py"))
    }
    return env_reads_in_sources(sources)


# ------------------------------------------------------------------- AWS calls made

# Which service a client variable talks to, by its name (``self._sqs``, ``ssm_client``, ``self._db``).
_RECEIVER_HINTS = (
    ("dynamo", "dynamodb"), ("ddb", "dynamodb"), ("db", "dynamodb"), ("sqs", "sqs"), ("s3", "s3"),
    ("ssm", "ssm"), ("lambda", "lambda"), ("sts", "sts"), ("transcribe", "transcribe"),
)  # fmt: skip
# Operations whose IAM action is not ``service:OperationName``.
_IAM_ACTIONS = {
    ("lambda", "invoke"): {"lambda:InvokeFunction"},
    ("s3", "list_objects_v2"): {"s3:ListBucket"},
    ("s3", "head_object"): {"s3:GetObject"},
    ("s3", "create_multipart_upload"): {"s3:PutObject"},
    ("s3", "upload_part"): {"s3:PutObject"},
    ("s3", "upload_part_copy"): {"s3:PutObject", "s3:GetObject"},
    ("s3", "copy_object"): {"s3:PutObject", "s3:GetObject"},
    ("s3", "complete_multipart_upload"): {"s3:PutObject"},
    ("s3", "delete_objects"): {"s3:DeleteObject"},
    # A transaction is authorised item by item; the registry's put + conditional update.
    ("dynamodb", "transact_write_items"): {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    # SQS's batch calls have no IAM action of their own: each entry needs the single call's.
    ("sqs", "change_message_visibility_batch"): {"sqs:ChangeMessageVisibility"},
}
# What a call needs instead when a given module makes it (a transaction: that module's items).
_IAM_ACTIONS_IN_MODULE = {
    # the budgets' hold records: put with a hold, deleted when it is settled or released
    ("dynamodb", "transact_write_items", "session_core/_budgets.py"): {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
    # a stop kept for a waiting message: checks the chat's backlog count, updates the live item
    ("dynamodb", "transact_write_items", "session_core/_stop_for_waiting.py"): {
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
    },
    # an update marked seen with the group message it queued: two updates
    ("dynamodb", "transact_write_items", "telegram_core/_update_dedup.py"): {"dynamodb:UpdateItem"},
}


def _operation_names(service: str) -> dict[str, str]:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


_OPERATIONS = {service: _operation_names(service) for _, service in _RECEIVER_HINTS}


def _aws_calls(tree: ast.AST) -> set[tuple[str, str]]:
    calls = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
        if len(args) == 2 and args[0] in _OPERATIONS and args[1] in _OPERATIONS[args[0]]:
            calls.add((args[0], args[1]))  # a dispatcher: self._call("s3", "put_object", ...)
            continue
        if not isinstance(node.func, ast.Attribute):
            continue
        receiver = ast.unparse(node.func.value).rsplit(".", 1)[-1].lower()
        for hint, service in _RECEIVER_HINTS:
            if hint in receiver:
                if node.func.attr in _OPERATIONS[service]:
                    calls.add((service, node.func.attr))
                break
    return calls


_SHARED_PACKAGES = ("session_core", "telegram_core")  # workspace libraries a function imports


def _session_core_modules_used(tree: ast.AST, package: str = "session_core") -> set[str]:
    """Modules of the shared packages a module imports, as ``package.name`` (public names,
    which ``aws_calls`` maps to their modules, or private modules); ``package`` is the
    module's own, for its relative imports."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(_SHARED_PACKAGES):
            top = node.module.split(".")[0]
            used.update(f"{top}.{alias.name}" for alias in node.names)
            if node.module != top:
                used.add(node.module)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            used.add(f"{package}.{node.module}")  # inside a shared package: `from ._registry import ...`
    return used


def aws_calls(package_src: Path) -> dict[tuple[str, str], set[str]]:
    """AWS operations a function's code can make: (service, operation) -> where.

    The package's own calls, plus those of every session-core and telegram-core module it
    imports (through the packages' public names), transitively.
    """
    trees: dict[str, ast.AST] = {}
    exported: dict[str, str] = {}
    for package in _SHARED_PACKAGES:
        src = PACKAGES / package.replace("_", "-") / "src" / package
        for path in src.glob("*.py"):
            trees[f"{package}.{path.stem}"] = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(trees[f"{package}.__init__"]):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                module = f"{package}.{node.module}"
                exported.update({f"{package}.{alias.name}": module for alias in node.names})

    found: dict[tuple[str, str], set[str]] = {}
    pending: list[str] = []
    for path in sorted(package_src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _aws_calls(tree):
            found.setdefault(call, set()).add(str(path.relative_to(ROOT)))
        pending += [exported.get(name, name) for name in _session_core_modules_used(tree)]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen or module not in trees:
            continue
        seen.add(module)
        package, stem = module.split(".", 1)
        for call in _aws_calls(trees[module]):
            found.setdefault(call, set()).add(f"{package}/{stem}.py")
        pending += [exported.get(name, name) for name in _session_core_modules_used(trees[module], package)]
    return found


def iam_actions(service: str, operation: str, where: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """The IAM actions an AWS operation needs (made in the modules ``where``)."""
    actions = _IAM_ACTIONS.get((service, operation)) or {f"{service}:{_OPERATIONS[service][operation]}"}
    if not where:
        return actions
    return set().union(
        *(_IAM_ACTIONS_IN_MODULE.get((service, operation, module), actions) for module in where)
    )


# ------------------------------------------------------------------- metrics emitted


def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    constants: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            constants[node.target.id] = node.value
    return constants


def emitted_metrics(src_dirs: list[Path]) -> dict[str, set[Path]]:
    """Metric name -> files under ``src_dirs`` that emit it (``emit_metric(NAME, ...)``, its
    name a string or a module-level constant of one, possibly defined in another module).
    Raises ValueError for a call whose name cannot be read this way, so that no metric is
    missed."""
    constants: dict[str, ast.expr] = {}
    calls: list[tuple[ast.expr, Path]] = []
    for path in sorted(p for src in src_dirs for p in src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants.update(_module_constants(tree))
        calls += [
            (node.args[0], path.relative_to(ROOT))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _call_name(node.func) == "emit_metric" and node.args
        ]

    def name_of(expr: ast.expr, path: Path, seen: frozenset[str] = frozenset()) -> str:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.Name) and expr.id in constants and expr.id not in seen:
            return name_of(constants[expr.id], path, seen | {expr.id})
        raise ValueError(f"{path}: emit_metric's name {ast.unparse(expr)} is no string constant")

    emitted: dict[str, set[Path]] = {}
    for expr, path in calls:
        emitted.setdefault(name_of(expr, path), set()).add(path)
    return emitted
