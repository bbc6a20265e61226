"""Engine-free checks of the Dagger module, read through the SDK's own registration.

No Dagger engine runs here. A small GraphQL server on loopback (``FakeEngine``) stands in for the
engine's API: only the fields the SDK's registration and this module's pipelines use, written as SDL
from dagger-io 0.21.8's generated client. Every object is a node (parent, field, arguments) and its
``id`` names the node, so what the SDK sent can be read back; leaves that would need a real engine
(``stdout``, ``glob``) are answered by the test that needs them.

* Registration runs the way the engine's Python runtime runs it: a fresh interpreter with the
  runtime's environment calls ``dagger.mod.cli.app(None, register=True)`` (dagger v0.21.8
  ``sdk/python/runtime/template/runtime.py``); the SDK connects with ``DAGGER_SESSION_PORT`` and
  ``DAGGER_SESSION_TOKEN``, builds the module's typedefs and writes the module ID to
  ``DAGGER_MODULE_FILE``. The tests read the functions, argument types/defaults/docs, return
  types, cache policies and check/generate flags from that registration, not from SDK internals.
* Pipelines are lazy queries: ``await obj.id()`` sends one to the fake engine, whose node chain
  gives the steps (``from``, ``withExec``, ...) with nested objects resolved.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE_DIR = REPO / "ci" / "dagger"
MODULE_SRC = MODULE_DIR / "src"
sys.path.insert(0, str(MODULE_SRC))


def _import_the_sdk_as_the_module_runtime_has_it() -> None:
    """Import gql's HTTPX transport bound to httpx, as in the module's own environment.

    dagger-io 0.21.8 hands httpx objects to gql's HTTPX transport, but gql 4.4 binds that transport to
    httpx2 whenever httpx2 is importable, and then rejects them ("Expected str or httpx2.URL"). The
    module's own lock (ci/dagger/uv.lock, what the engine installs) has no httpx2; this venv has it for
    huggingface_hub. So httpx2 is hidden while gql's transport is imported (only then: the delivery
    code keeps its httpx2), and registration runs in an interpreter that hides it the same way.
    """
    if "gql.transport.httpx" not in sys.modules:
        saved = sys.modules.get("httpx2")
        sys.modules["httpx2"] = None  # type: ignore[assignment]
        try:
            pytest.importorskip("gql.transport.httpx")
        finally:
            if saved is None:
                del sys.modules["httpx2"]
            else:
                sys.modules["httpx2"] = saved
    transport = sys.modules["gql.transport.httpx"]
    bound = transport.httpx.__name__
    assert bound == "httpx", f"gql's HTTPX transport was imported with {bound} before these tests"


_import_the_sdk_as_the_module_runtime_has_it()
dagger = pytest.importorskip("dagger")
graphql = pytest.importorskip("graphql")
from llm_platform import gitops, images, modelcar, promotion, substrate, toolbox  # noqa: E402
from llm_platform.main import LlmPlatform  # noqa: E402

DIGEST_REF = re.compile(r"^[a-z0-9.\-/:_]+@sha256:[0-9a-f]{64}$")

# The functions `dagger check` runs, and those `dagger generate` (or `dagger call`) applies.
CHECKS = {"config_check", "layers_check", "substrate_check", "validate"}
GENERATORS = {"layers_render", "modelcar_lock", "root_write"}
# Functions with side effects outside the engine (registry pushes, cloud state, commits): never cached.
SIDE_EFFECTS = {
    "hold_release",
    "modelcar_publish",
    "promote",
    "rollback",
    "tofu_apply",
    "tofu_plan",
    "verify_release",
}
# Pure but reading the clock (soak, freeze windows): a cached answer would be stale, so never cached.
CLOCK = {"status"}
# The functions that commit a ledger entry: the repo with .git, a LedgerCommit back.
LEDGER = {"hold_release", "promote", "rollback", "verify_release"}


# --------------------------------------------------------------------------- the fake engine

SDL = """
scalar JSON
scalar Platform
scalar ModuleID
scalar TypeDefID
scalar FunctionID
scalar ContainerID
scalar DirectoryID
scalar FileID
scalar SecretID
scalar CacheVolumeID
scalar ChangesetID
scalar ServiceID
scalar ErrorID
scalar Void

enum TypeDefKind {
  STRING_KIND INTEGER_KIND FLOAT_KIND BOOLEAN_KIND SCALAR_KIND LIST_KIND OBJECT_KIND
  INTERFACE_KIND INPUT_KIND VOID_KIND ENUM_KIND
}
enum FunctionCachePolicy { Default PerSession Never }
enum ReturnType { SUCCESS FAILURE ANY }
enum CacheSharingMode { SHARED PRIVATE LOCKED }

type Query {
  module: Module!
  typeDef: TypeDef!
  function(name: String!, returnType: TypeDefID!): Function!
  container(platform: Platform): Container!
  directory: Directory!
  cacheVolume(key: String!, source: DirectoryID, sharing: CacheSharingMode, owner: String): CacheVolume!
  setSecret(name: String!, plaintext: String!): Secret!
  error(message: String!): Error!
  currentFunctionCall: FunctionCall!
}

type Error {
  id: ErrorID!
  withValue(name: String!, value: JSON!): Error!
}

type FunctionCall {
  returnError(error: ErrorID!): Void
}

type Module {
  id: ModuleID!
  withDescription(description: String!): Module!
  withObject(object: TypeDefID!): Module!
  withInterface(iface: TypeDefID!): Module!
  withEnum(enum: TypeDefID!): Module!
}

type TypeDef {
  id: TypeDefID!
  withKind(kind: TypeDefKind!): TypeDef!
  withOptional(optional: Boolean!): TypeDef!
  withListOf(elementType: TypeDefID!): TypeDef!
  withObject(name: String!, description: String, deprecated: String): TypeDef!
  withInterface(name: String!, description: String): TypeDef!
  withScalar(name: String!, description: String): TypeDef!
  withEnum(name: String!, description: String): TypeDef!
  withField(name: String!, typeDef: TypeDefID!, description: String, deprecated: String): TypeDef!
  withFunction(function: FunctionID!): TypeDef!
  withConstructor(function: FunctionID!): TypeDef!
}

type Function {
  id: FunctionID!
  withDescription(description: String!): Function!
  withArg(
    name: String!, typeDef: TypeDefID!, description: String, defaultValue: JSON, defaultPath: String,
    defaultAddress: String, ignore: [String!], deprecated: String
  ): Function!
  withCachePolicy(policy: FunctionCachePolicy!, timeToLive: String): Function!
  withCheck: Function!
  withGenerator: Function!
  withUp: Function!
  withDeprecated(reason: String): Function!
}

type Container {
  id: ContainerID!
  from(address: String!, registryService: ServiceID): Container!
  withEnvVariable(name: String!, value: String!, expand: Boolean): Container!
  withMountedCache(
    path: String!, cache: CacheVolumeID!, source: DirectoryID, sharing: CacheSharingMode, owner: String,
    expand: Boolean
  ): Container!
  withDirectory(
    path: String!, source: DirectoryID!, exclude: [String!], include: [String!], gitignore: Boolean,
    owner: String, expand: Boolean, permissions: Int
  ): Container!
  withMountedDirectory(
    path: String!, source: DirectoryID!, owner: String, readOnly: Boolean, expand: Boolean
  ): Container!
  withFile(path: String!, source: FileID!, permissions: Int, owner: String, expand: Boolean): Container!
  withNewFile(path: String!, contents: String!, permissions: Int, owner: String, expand: Boolean): Container!
  withWorkdir(path: String!, expand: Boolean): Container!
  withExec(args: [String!]!, expect: ReturnType, useEntrypoint: Boolean, expand: Boolean): Container!
  withSecretVariable(name: String!, secret: SecretID!): Container!
  withMountedSecret(path: String!, source: SecretID!, owner: String, mode: Int, expand: Boolean): Container!
  file(path: String!, expand: Boolean): File!
  directory(path: String!, expand: Boolean): Directory!
  stdout: String!
}

type Directory {
  id: DirectoryID!
  file(path: String!): File!
  directory(path: String!): Directory!
  withNewFile(path: String!, contents: String!, permissions: Int): Directory!
  changes(from: DirectoryID!): Changeset!
  glob(pattern: String!): [String!]!
}

type File { id: FileID! }
type Secret { id: SecretID! }
type CacheVolume { id: CacheVolumeID! }
type Changeset { id: ChangesetID! }
"""


@dataclasses.dataclass(eq=False)
class Node:
    """One API object: the field that made it from its parent, with its arguments (IDs resolved)."""

    type: str
    parent: Node | None
    field: str
    args: dict[str, Any]

    def chain(self) -> list[Node]:
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def steps(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n.field, n.args) for n in self.chain()]

    def shape(self) -> list[tuple[str, dict[str, Any]]]:
        """``steps()`` with the objects among the arguments replaced by their own shape (comparable)."""

        def value(v: Any) -> Any:
            if isinstance(v, Node):
                return v.shape()
            return [value(x) for x in v] if isinstance(v, list) else v

        return [(n.field, {k: value(v) for k, v in n.args.items()}) for n in self.chain()]

    def execs(self) -> list[list[str]]:
        return [args["args"] for name, args in self.steps() if name == "withExec"]

    def calls(self, field: str) -> list[dict[str, Any]]:
        return [args for name, args in self.steps() if name == field]


Leaf = Callable[[Node, dict[str, Any]], Any]


class FakeEngine:
    """A GraphQL endpoint with the engine's schema subset; it records objects instead of running them."""

    def __init__(self) -> None:
        self.schema = graphql.build_schema(SDL)
        self.token = "fake-engine-session"
        self.nodes: dict[str, Node] = {}
        self.errors: list[Node] = []  # what the SDK reported with FunctionCall.returnError
        self.leaves: dict[tuple[str, str], Leaf] = {("FunctionCall", "returnError"): self._error}
        self._lock = threading.Lock()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's client expects

            def do_POST(self) -> None:
                expected = "Basic " + base64.b64encode(f"{engine.token}:".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_error(401)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                result = graphql.graphql_sync(
                    engine.schema,
                    body["query"],
                    variable_values=body.get("variables"),
                    operation_name=body.get("operationName"),
                    field_resolver=engine.resolve,
                )
                payload: dict[str, Any] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [error.formatted for error in result.errors]
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _error(self, node: Node, args: dict[str, Any]) -> None:
        with self._lock:
            self.errors.append(args["error"])

    def _deref(self, info: Any, name: str, value: Any) -> Any:
        arg_type = graphql.get_named_type(info.parent_type.fields[info.field_name].args[name].type)
        if not arg_type.name.endswith("ID") or value is None:
            return value
        with self._lock:
            return [self.nodes[v] for v in value] if isinstance(value, list) else self.nodes[value]

    def resolve(self, parent: Any, info: Any, **args: Any) -> Any:
        parent_node = parent if isinstance(parent, Node) else None
        if info.field_name == "id":
            assert parent_node is not None
            with self._lock:
                key = f"{parent_node.type}:{len(self.nodes)}"
                self.nodes[key] = parent_node
            return key
        resolved = {name: self._deref(info, name, value) for name, value in args.items()}
        returns = graphql.get_named_type(info.return_type)
        if isinstance(returns, graphql.GraphQLObjectType):
            return Node(returns.name, parent_node, info.field_name, resolved)
        leaf = self.leaves.get((info.parent_type.name, info.field_name))
        if leaf is None or parent_node is None:
            raise graphql.GraphQLError(
                f"the fake engine cannot compute {info.parent_type.name}.{info.field_name}"
            )
        return leaf(parent_node, resolved)

    @contextlib.contextmanager
    def answering(self, type_name: str, field: str, leaf: Leaf) -> Iterator[None]:
        self.leaves[(type_name, field)] = leaf
        try:
            yield
        finally:
            del self.leaves[(type_name, field)]

    def session_env(self) -> dict[str, str]:
        return {"DAGGER_SESSION_PORT": str(self.port), "DAGGER_SESSION_TOKEN": self.token}


@functools.cache
def engine() -> FakeEngine:
    return FakeEngine()


@contextlib.contextmanager
def _session_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in engine().session_env()}
    os.environ.update(engine().session_env())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` connected to the fake engine (the SDK's public ``dagger.connect``)."""

    async def connected() -> Any:
        async with await dagger.connect():
            return await coro

    with _session_env():
        return asyncio.run(connected())


def query(obj: Any) -> Node:
    """Send the lazy query ``obj`` to the fake engine (``await obj.id()``) and return its node."""
    return engine().nodes[run(obj.id())]


def repo_source() -> Any:
    """A stand-in for the repo directory, recognisable in a pipeline."""
    return dagger.dag.directory().with_new_file(".repo-marker", "the repo")


def is_repo(node: Node) -> bool:
    """Whether ``node`` is (a path taken from) the directory ``repo_source()`` builds."""
    return ("withNewFile", {"path": ".repo-marker", "contents": "the repo"}) in node.steps()


# --------------------------------------------------------------------------- the registration


@dataclasses.dataclass
class Arg:
    type: str
    description: str
    default: Any  # decoded JSON, or NO_DEFAULT
    default_path: str | None
    ignore: list[str] | None


@dataclasses.dataclass
class Fn:
    name: str
    returns: str
    description: str
    cache: tuple[str, str | None] | None  # (policy, time to live) as registered; None: the default
    check: bool
    generator: bool
    args: dict[str, Arg]

    def required(self) -> list[str]:
        """Arguments a caller must give (a DefaultPath argument is loaded from the context instead)."""
        return [
            n
            for n, a in self.args.items()
            if a.default is NO_DEFAULT and not a.type.endswith("?") and a.default_path is None
        ]


NO_DEFAULT = object()
_SCALARS = {
    "STRING_KIND": "String",
    "INTEGER_KIND": "Int",
    "FLOAT_KIND": "Float",
    "BOOLEAN_KIND": "Boolean",
    "VOID_KIND": "Void",
}


def typedef(node: Node) -> str:
    """A registered TypeDef as text: ``String``, ``[String]``, ``Directory``; ``?`` marks optional."""
    kind, name, optional = "", "", False
    for field, args in node.steps():
        if field == "withKind":
            kind = _SCALARS.get(args["kind"], args["kind"])
        elif field == "withOptional":
            optional = args["optional"]
        elif field in ("withObject", "withInterface", "withScalar", "withEnum"):
            kind, name = field, args["name"]
        elif field == "withListOf":
            kind, name = "list", f"[{typedef(args['elementType'])}]"
    text = name or kind
    assert text, f"typedef without a kind: {node.steps()}"
    return text + ("?" if optional else "")


def function_def(node: Node) -> Fn:
    (root, first), *rest = node.steps()
    assert root == "function"
    fn = Fn(first["name"], typedef(first["returnType"]), "", None, False, False, {})
    for field, args in rest:
        if field == "withDescription":
            fn.description = args["description"]
        elif field == "withCachePolicy":
            fn.cache = (args["policy"], args.get("timeToLive"))
        elif field == "withCheck":
            fn.check = True
        elif field == "withGenerator":
            fn.generator = True
        elif field == "withArg":
            default = json.loads(args["defaultValue"]) if "defaultValue" in args else NO_DEFAULT
            fn.args[args["name"]] = Arg(
                typedef(args["typeDef"]),
                args.get("description", ""),
                default,
                args.get("defaultPath"),
                args.get("ignore"),
            )
    return fn


@dataclasses.dataclass
class Obj:
    name: str
    description: str
    constructor: Fn | None
    functions: dict[str, Fn]
    fields: dict[str, str]
    field_docs: dict[str, str] = dataclasses.field(default_factory=dict)


def object_def(node: Node) -> Obj:
    obj = Obj("", "", None, {}, {})
    for field, args in node.steps():
        if field == "withObject":
            obj.name, obj.description = args["name"], args.get("description", "")
        elif field == "withField":
            obj.fields[args["name"]] = typedef(args["typeDef"])
            obj.field_docs[args["name"]] = args.get("description") or ""
        elif field == "withFunction":
            fn = function_def(args["function"])
            obj.functions[fn.name] = fn
        elif field == "withConstructor":
            obj.constructor = function_def(args["function"])
    return obj


def main_object_name() -> str:
    """The engine's main object name: dagger.json's name in PascalCase (``llm-platform`` -> LlmPlatform)."""
    name = json.loads((REPO / "dagger.json").read_text())["name"]
    return "".join(part.capitalize() for part in re.split(r"[-_ ]+", name))


# The engine's Python runtime entrypoint with --register (dagger v0.21.8 runtime/template/runtime.py),
# with httpx2 hidden as in the module's own environment (see _import_the_sdk_as_the_module_runtime_has_it).
RUNTIME_REGISTER = """\
import sys
sys.modules["httpx2"] = None
from dagger.mod.cli import app
sys.exit(app(None, True))
"""


@functools.cache
def registration() -> dict[str, Obj]:
    """Register the module like the engine's Python runtime does; the objects it registered, by name."""
    module_name = json.loads((REPO / "dagger.json").read_text())["name"]
    package = module_name.replace("-", "_")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"llm-platform-module-{os.getpid()}.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(MODULE_SRC),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DAGGER_MODULE": module_name,
        "DAGGER_DEFAULT_PYTHON_PACKAGE": package,
        "DAGGER_MAIN_OBJECT": main_object_name(),
        "DAGGER_MODULE_FILE": str(out),
        **engine().session_env(),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUNTIME_REGISTER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"registration failed:\n{proc.stdout}\n{proc.stderr}"
    try:
        module = engine().nodes[json.loads(out.read_text())]
    finally:
        out.unlink(missing_ok=True)
    objects = [object_def(args["object"]) for field, args in module.steps() if field == "withObject"]
    return {obj.name: obj for obj in objects}


def main_object() -> Obj:
    return registration()[main_object_name()]


def functions() -> dict[str, Fn]:
    return main_object().functions


# --------------------------------------------------------------------------- module config and lock


def test_dagger_json_pins_the_v021_engine_matching_the_sdk() -> None:
    cfg = json.loads((REPO / "dagger.json").read_text())
    assert cfg["source"] == "ci/dagger"
    assert cfg["sdk"]["source"] == "python"
    sdk_pin = re.search(r'"dagger-io==([0-9.]+)"', (MODULE_DIR / "pyproject.toml").read_text())
    assert sdk_pin and cfg["engineVersion"] == f"v{sdk_pin.group(1)}"
    assert cfg["engineVersion"].startswith("v0.21.")
    dev_pin = re.search(r'"dagger-io==([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert dev_pin and dev_pin.group(1) == sdk_pin.group(1)
    from importlib.metadata import version

    assert version("dagger-io") == sdk_pin.group(1)  # the SDK these tests register with


def test_module_lock_is_committed_and_resolves_the_sdk_from_pypi() -> None:
    project = tomllib.loads((MODULE_DIR / "pyproject.toml").read_text())
    # No vendored path source: a checkout has no ci/dagger/sdk (codegen writes it, and it is ignored).
    assert "sources" not in project.get("tool", {}).get("uv", {})
    lock = tomllib.loads((MODULE_DIR / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    sdk = packages["dagger-io"]
    pin = re.search(r"dagger-io==([0-9.]+)", " ".join(project["project"]["dependencies"]))
    assert pin and sdk["version"] == pin.group(1)
    for pkg in packages.values():
        if pkg["name"] == project["project"]["name"]:
            assert pkg["source"] == {"editable": "."}
            continue
        assert pkg["source"] == {"registry": "https://pypi.org/simple"}, pkg["name"]
        hashes = [w["hash"] for w in pkg.get("wheels", [])] + (
            [pkg["sdist"]["hash"]] if "sdist" in pkg else []
        )
        assert hashes and all(h.startswith("sha256:") for h in hashes), pkg["name"]

    def ignored(path: str) -> bool:
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path], check=False)
        assert proc.returncode in (0, 1), proc
        return proc.returncode == 0

    assert not ignored("ci/dagger/uv.lock")
    assert ignored("ci/dagger/sdk/src/dagger/__init__.py")


# --------------------------------------------------------------------------- the registration


def test_module_registers_its_main_object_with_the_repo_as_default_source() -> None:
    obj = main_object()
    assert obj.description.strip()
    assert obj.constructor is not None
    source = obj.constructor.args["source"]
    assert source.type == "Directory"
    assert source.default_path == "/"
    assert source.ignore == toolbox.SOURCE_IGNORE
    assert {".git", ".venv", "ci/dagger/sdk"} <= set(source.ignore or [])
    assert source.description.strip()


def test_module_exposes_a_function_per_delivery_step() -> None:
    assert {
        "toolbox",
        "config_check",
        "root",
        "root_write",
        "layers_render",
        "layers_check",
        "schemas",
        "validate",
        "validate_report",
        "substrate_check",
        "tofu_plan",
        "tofu_apply",
        "modelcar_build",
        "modelcar_lock",
        "modelcar_publish",
        "promote",
        "rollback",
        "hold_release",
        "verify_release",
        "status",
        "history",
    } <= set(functions())


def test_every_function_is_documented_and_fully_typed() -> None:
    problems = []
    for name, fn in functions().items():
        if not fn.description.strip():
            problems.append(f"{name}: no description")
        if fn.returns.startswith("Void"):
            problems.append(f"{name}: returns nothing")
        for arg_name, arg in fn.args.items():
            if not arg.description.strip():
                problems.append(f"{name}({arg_name}): no description")
            if arg.type.startswith("Void"):
                problems.append(f"{name}({arg_name}): untyped")
    for obj in registration().values():  # the objects' fields too (LlmPlatform.source, LedgerCommit)
        if not obj.description.strip():
            problems.append(f"{obj.name}: no description")
        problems += [
            f"{obj.name}.{field}: no description" for field, doc in obj.field_docs.items() if not doc
        ]
    assert not problems, problems


def test_checks_are_exactly_the_listed_ones_and_need_no_arguments() -> None:
    registered = {name for name, fn in functions().items() if fn.check}
    assert registered == CHECKS
    for name in CHECKS:
        assert functions()[name].required() == [], f"dagger check skips {name}: it has required args"


def test_generate_functions_return_changesets() -> None:
    registered = {name for name, fn in functions().items() if fn.generator}
    assert registered == GENERATORS
    returning_changesets = {name for name, fn in functions().items() if fn.returns == "Changeset"}
    assert returning_changesets == GENERATORS
    # Without required arguments, `dagger generate` runs them all (the modelcar lock needs a name).
    assert [name for name in GENERATORS if functions()[name].required()] == ["modelcar_lock"]


def test_side_effecting_functions_are_never_cached() -> None:
    for name, fn in functions().items():
        if name in SIDE_EFFECTS | CLOCK:
            assert fn.cache == ("Never", None), name
        else:
            assert fn.cache is None, f"{name}: unexpected cache policy {fn.cache}"
        if name.endswith(("publish", "apply", "plan", "promote", "rollback", "release")):
            assert name in SIDE_EFFECTS, f"{name} looks side-effecting: add it to SIDE_EFFECTS"


def test_secrets_are_only_secret_arguments() -> None:
    for name, fn in functions().items():
        for arg_name, arg in fn.args.items():
            # a flag carries no secret value (tofu_plan's destroy_secrets is about Secret Manager)
            if re.search(r"token|password|credential|secret", arg_name) and arg.type != "Boolean":
                assert arg.type.rstrip("?") == "Secret", f"{name}({arg_name}) is {arg.type}, not a Secret"


def test_registration_fails_a_function_with_an_unsupported_type(tmp_path: Path) -> None:
    """The harness is not blind: a module the SDK refuses to register fails registration."""
    pkg = tmp_path / "broken_mod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import dagger\n\n\n@dagger.object_type\nclass BrokenMod:\n"
        "    @dagger.function\n    def f(self) -> int | str:\n        return 1\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(tmp_path),
        "DAGGER_MODULE": "broken-mod",
        "DAGGER_DEFAULT_PYTHON_PACKAGE": "broken_mod",
        "DAGGER_MAIN_OBJECT": "BrokenMod",
        "DAGGER_MODULE_FILE": str(tmp_path / "module.json"),
        **engine().session_env(),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUNTIME_REGISTER], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert not (tmp_path / "module.json").exists()
    messages = [error.chain()[0].args["message"] for error in engine().errors]
    assert any("unsupported return type" in message for message in messages), messages


# --------------------------------------------------------------------------- images


def test_every_image_is_pinned_by_digest() -> None:
    pinned = {k: v for k, v in vars(images).items() if k.isupper() and isinstance(v, str)}
    assert pinned, "images.py defines no images"
    for name, ref in pinned.items():
        assert DIGEST_REF.match(ref), f"images.{name} = {ref!r} is not pinned by digest"
    # No image reference may bypass images.py: every from_() takes an images.* constant.
    for path in (MODULE_SRC / "llm_platform").glob("*.py"):
        for call in re.findall(r"from_\(([^)]*)\)", path.read_text()):
            assert call.strip().startswith("images."), f"{path.name}: from_({call}) is not a pinned image"
    base = tomllib.loads((MODULE_DIR / "pyproject.toml").read_text())["tool"]["dagger"]["base-image"]
    assert DIGEST_REF.match(base)
    # And what the pipelines really pull is one of them.
    from llm_platform import validate

    src = repo_source()
    pipelines = [
        toolbox.toolbox(src),
        validate.validate_toolbox(src, None),
        substrate.tofu_toolbox(src, None),
        modelcar.modelcar_toolbox(src, None),
        promotion.git_toolbox(src, author_name="a", author_email="a@example.com"),
    ]
    pulled: set[str] = set()
    for pipeline in pipelines:
        for node in _all_nodes(query(pipeline)):
            pulled |= {args["address"] for name, args in node.steps() if name == "from"}
    assert pulled == {images.PYTHON, images.KUBECONFORM, images.OPENTOFU}
    assert pulled <= set(pinned.values())


def _all_nodes(node: Node) -> list[Node]:
    """``node`` and every object reachable through its arguments."""
    seen: list[Node] = []
    todo = [node]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for step in current.chain():
            for value in step.args.values():
                todo.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, Node))
    return seen


# --------------------------------------------------------------------------- the toolbox


def _repo_inputs(steps: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Container paths filled from the repo (withFile / withDirectory of a path of the repo)."""
    paths = []
    for name, args in steps:
        if name in ("withFile", "withDirectory") and isinstance(args.get("source"), Node):
            src = args["source"]
            if is_repo(src):
                assert src.field in ("file", "directory"), f"{name} copies the whole repo"
                paths.append(src.args["path"])
    return paths


def test_toolbox_installs_the_frozen_root_lock_from_an_allow_list() -> None:
    node = query(toolbox.toolbox(repo_source()))
    steps = node.steps()
    assert steps[1] == ("from", {"address": images.PYTHON})
    execs = [(i, args["args"]) for i, (name, args) in enumerate(steps) if name == "withExec"]
    (_, uv_install), (i_deps, deps), (i_project, project) = execs
    assert uv_install[:2] == ["pip", "install"] and "--require-hashes" in uv_install
    assert "--no-deps" in uv_install and "--only-binary=:all:" in uv_install
    assert deps == ["uv", "sync", "--frozen", "--no-dev", "--no-install-project"]
    assert project == ["uv", "sync", "--frozen", "--no-dev", "--no-editable"]
    for argv in (deps, project):
        assert not {"--extra", "--all-extras", "--group", "--all-groups", "dev"} & set(argv)
    # The dependency layer sees pyproject.toml and uv.lock only; the project layer adds the README
    # (hatchling reads it) and ci/delivery; nothing else of the repo is ever an install input.
    assert sorted(_repo_inputs(steps[:i_deps])) == ["pyproject.toml", "uv.lock"]
    assert sorted(_repo_inputs(steps[i_deps:i_project])) == ["README.md", "ci/delivery"]
    assert _repo_inputs(steps[i_project:]) == []
    # The whole repo is mounted only after both installs, for running commands.
    mounts = [(i, args) for i, (name, args) in enumerate(steps) if name == "withMountedDirectory"]
    assert len(mounts) == 1 and mounts[0][0] > i_project
    assert mounts[0][1]["path"] == toolbox.WORKDIR and is_repo(mounts[0][1]["source"])
    assert not [a for n, a in steps if n == "withDirectory" and a["source"].field != "directory"]
    assert steps[-1] == ("withWorkdir", {"path": toolbox.WORKDIR})
    env = {a["name"]: a["value"] for n, a in steps if n == "withEnvVariable"}
    assert env["UV_PROJECT_ENVIRONMENT"] == env["VIRTUAL_ENV"] == toolbox.VENV
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["PATH"].startswith(f"{toolbox.VENV}/bin:")


def test_toolbox_uv_is_the_root_projects_uv_pinned_by_hash() -> None:
    steps = query(toolbox.toolbox(repo_source())).steps()
    files = {a["path"]: a["contents"] for n, a in steps if n == "withNewFile" and "contents" in a}
    requirements = files[toolbox.UV_REQUIREMENTS]
    match = re.fullmatch(r"uv==(\S+)((?: --hash=sha256:[0-9a-f]{64})+)\n", requirements)
    assert match, requirements
    assert match.group(1) == toolbox.UV_VERSION
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    required = root.get("tool", {}).get("uv", {}).get("required-version")
    if required is not None:  # the root project refuses any other uv
        assert required == f"=={toolbox.UV_VERSION}"
    uv_install = next(argv for argv in query(toolbox.toolbox(repo_source())).execs() if "pip" in argv)
    assert uv_install[-2:] == ["-r", toolbox.UV_REQUIREMENTS]


# --------------------------------------------------------------------------- checks and generators


def _exec_tails(node: Node) -> list[list[str]]:
    """The deliver commands a pipeline runs (after ``deliver --repo /repo``)."""
    prefix = ["deliver", "--repo", toolbox.WORKDIR]
    return [argv[len(prefix) :] for argv in node.execs() if argv[: len(prefix)] == prefix]


def _changeset(node: Node) -> Node:
    """The container a changeset was taken from, checking it diffs its /repo against the repo."""
    assert node.type == "Changeset" and node.field == "changes"
    assert is_repo(node.args["from"]) and node.args["from"].field == "withNewFile"
    directory = node.parent
    assert directory is not None and directory.steps()[-1] == ("directory", {"path": toolbox.WORKDIR})
    assert directory.parent is not None
    return directory.parent


ENVS = ("dev", "prod", "staging")
ENV_CONFIGS = [f"environments/{env}/config.yaml" for env in ENVS]


def _globbing(pattern: str = gitops.ENV_CONFIG_GLOB) -> Any:
    def leaf(node: Node, args: dict[str, Any]) -> list[str]:
        assert is_repo(node) and args == {"pattern": pattern}
        return ENV_CONFIGS

    return engine().answering("Directory", "glob", leaf)


def test_layers_render_writes_every_env_and_returns_the_repo_changes() -> None:
    platform = LlmPlatform(source=repo_source())
    with _globbing():
        every = query_async(platform.layers_render())
    ctr = _changeset(every)
    assert _exec_tails(ctr) == [["layers", "render", "--env", e, "--write"] for e in ENVS]
    one = _changeset(query_async(platform.layers_render(env="dev")))
    assert _exec_tails(one) == [["layers", "render", "--env", "dev", "--write"]]


def test_root_write_writes_the_root_of_every_env_or_one_with_a_profile() -> None:
    platform = LlmPlatform(source=repo_source())
    with _globbing():
        every = _changeset(query_async(platform.root_write()))
    assert _exec_tails(every) == [["root", "--env", e, "--write"] for e in ENVS]
    one = _changeset(query_async(platform.root_write(env="prod", profile="serving")))
    assert _exec_tails(one) == [["root", "--env", "prod", "--profile", "serving", "--write"]]
    with _globbing(), pytest.raises(ValueError, match="one env"):
        run(platform.root_write(profile="serving"))


def test_modelcar_lock_is_the_changeset_of_modelcar_build() -> None:
    ctr = _changeset(query(modelcar.lock(repo_source(), "qwen", None)))
    assert _exec_tails(ctr) == [["modelcar", "build", "qwen", "--output", modelcar.LAYOUT_DIR, "--json"]]
    # build and lock read the same pipeline (the engine runs the build once for both)
    layout = query(modelcar.build(repo_source(), "qwen", None))
    assert layout.steps()[-1] == ("directory", {"path": modelcar.LAYOUT_DIR})
    assert layout.parent is not None and layout.parent.shape() == ctr.shape()


def _stdout_of(coro: Coroutine[Any, Any, Any]) -> Node:
    """Run a function that awaits ``Container.stdout`` and return the container it read."""
    seen: list[Node] = []

    def leaf(node: Node, args: dict[str, Any]) -> str:
        seen.append(node)
        return "{}"

    with engine().answering("Container", "stdout", leaf), _globbing():
        run(coro)
    (node,) = seen
    return node


def test_checks_run_the_cli_over_every_environment() -> None:
    platform = LlmPlatform(source=repo_source())
    assert _exec_tails(_stdout_of(platform.config_check())) == [["config", "check", "--json"]]
    assert _exec_tails(_stdout_of(platform.config_check(env="dev"))) == [
        ["config", "check", "--json", "--env", "dev"]
    ]
    assert _exec_tails(_stdout_of(platform.layers_check())) == [
        ["layers", "render", "--env", e, "--check"] for e in ENVS
    ]
    assert _exec_tails(_stdout_of(platform.substrate_check())) == [["substrate-check", "--json"]]


def test_the_cli_accepts_the_commands_the_module_runs() -> None:
    from delivery import cli

    platform = LlmPlatform(source=repo_source())
    with _globbing():
        commands = [
            *_exec_tails(_changeset(query_async(platform.layers_render()))),
            *_exec_tails(_changeset(query_async(platform.root_write(env="dev", profile="full")))),
            *_exec_tails(_changeset(query(modelcar.lock(repo_source(), "m", None)))),
        ]
    commands += _exec_tails(_stdout_of(platform.config_check(env="dev")))
    commands += _exec_tails(_stdout_of(platform.layers_check()))
    for argv in commands:
        assert _parse(cli.main_group, argv), argv


def _parse(group: Any, argv: list[str]) -> dict[str, Any]:
    """The params ``deliver --repo /repo ARGV`` parses to (through subgroups); raises if rejected."""
    import click

    ctx = group.make_context("deliver", ["--repo", toolbox.WORKDIR], resilient_parsing=True)
    command, args = group, list(argv)
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in {argv}"
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=name, parent=ctx)
        else:
            ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return dict(ctx.params)


def test_gitops_env_names_follow_the_cli_convention() -> None:
    assert gitops.env_names(ENV_CONFIGS[::-1]) == ["dev", "prod", "staging"]
    with pytest.raises(ValueError, match="no environment"):
        gitops.layers(repo_source(), [], "--check")
    with pytest.raises(ValueError, match="--write or --check"):
        gitops.layers(repo_source(), ["dev"], "--diff")


def query_async(coro: Coroutine[Any, Any, Any]) -> Node:
    """Await a module function (connected to the fake engine), then send its lazy result."""

    async def both() -> str:
        result = await coro
        return str(await result.id())

    return engine().nodes[run(both())]


# --------------------------------------------------------------------------- promotion

AUTHOR = {"author_name": "Release Bot", "author_email": "release-bot@example.com"}
OUTCOME = '{"ok": true, "env": "prod"}'
GIT_TOKEN = "git-token-plaintext"
REGISTRY_PASSWORD = "registry-password-plaintext"


def _secret(name: str, plaintext: str) -> Any:
    return dagger.dag.set_secret(name, plaintext)


def _ledger_commit(coro: Coroutine[Any, Any, Any]) -> tuple[str, Node, Node]:
    """Run a ledger function: its outcome, the container whose stdout it read, its repo directory."""
    seen: list[Node] = []

    def leaf(node: Node, args: dict[str, Any]) -> str:
        seen.append(node)
        return OUTCOME

    async def both() -> tuple[str, str]:
        result = await coro
        return result.outcome, str(await result.repo.id())

    with engine().answering("Container", "stdout", leaf):
        outcome, repo_id = run(both())
    (ctr,) = seen
    return outcome, ctr, engine().nodes[repo_id]


def _env(node: Node) -> dict[str, str]:
    return {a["name"]: a["value"] for n, a in node.steps() if n == "withEnvVariable"}


def _secret_vars(node: Node) -> dict[str, str]:
    """Secret variable -> the plaintext it was made from (dag.set_secret in these tests)."""
    return {a["name"]: a["secret"].args["plaintext"] for n, a in node.steps() if n == "withSecretVariable"}


def _strings(node: Node) -> Iterator[str]:
    """Every string argument of every object a pipeline is made of, except the secrets' own values."""
    for reachable in _all_nodes(node):
        for field, args in reachable.steps():
            if field == "setSecret":
                continue
            for value in args.values():
                yield from (v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))


def test_ledger_functions_take_the_repo_with_git_and_return_a_ledger_commit() -> None:
    commit = registration()["LedgerCommit"]
    assert commit.fields == {"outcome": "String", "repo": "Directory"}
    assert commit.description.strip() and all(doc.strip() for doc in commit.field_docs.values())
    assert {name for name, fn in functions().items() if fn.returns == "LedgerCommit"} == LEDGER
    required = {
        "promote": ["to", "author_name", "author_email"],
        "rollback": ["env", "author_name", "author_email"],
        "hold_release": ["env", "author_name", "author_email"],
        "verify_release": ["env", "evidence", "author_name", "author_email"],
    }
    for name in LEDGER:
        fn = functions()[name]
        assert fn.required() == required[name], name
        repo = fn.args["repo"]
        assert (repo.type, repo.default_path) == ("Directory", "/"), name
        assert repo.ignore == promotion.GIT_SOURCE_IGNORE, name
        assert (fn.args["push"].type, fn.args["push"].default) == ("Boolean", False), name
        assert fn.args["git_token"].type == "Secret?", name
        assert fn.args["git_username"].default == "x-access-token", name
        assert fn.args["remote_url"].default == "", name
    promote = functions()["promote"].args
    assert promote["password"].type == "Secret?" and promote["username"].default == ""
    assert promote["only"].type == "[String]?" and promote["dry_run"].default is False
    for name in ("status", "history"):
        assert functions()[name].args["json"].type == "Boolean", name
        assert "repo" not in functions()[name].args  # files only: the constructor's source, no .git


def test_the_repo_with_git_leaves_out_only_untracked_git_ignored_paths() -> None:
    """The CLI refuses a dirty tree: leaving out a tracked or unignored path would make it look dirty."""
    assert ".git" in toolbox.SOURCE_IGNORE
    assert [p for p in toolbox.SOURCE_IGNORE if p != ".git"] == promotion.GIT_SOURCE_IGNORE
    if not (REPO / ".git").is_dir():
        pytest.skip("not a git checkout")
    for pattern in promotion.GIT_SOURCE_IGNORE:
        tracked = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "--", f":(glob){pattern}", f":(glob){pattern}/**"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert tracked == "", f"{pattern} leaves out tracked files: {tracked.splitlines()[:3]}"
        probe = pattern.removeprefix("**/") + "/probe"
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", probe], check=False
        )
        assert ignored.returncode == 0, f"{pattern} is not git-ignored"


def test_git_is_installed_only_for_the_ledger_functions_above_the_shared_layers() -> None:
    plain = query(toolbox.toolbox(repo_source())).shape()
    with_git = query(promotion.git_toolbox(repo_source(), **AUTHOR)).shape()
    shared = plain.index(("withEnvVariable", {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}))
    assert with_git[:shared] == plain[:shared]  # the same install layers (and their cache)
    assert with_git[shared + 1] == ("withExec", {"args": list(promotion.GIT_INSTALL)})
    assert (
        "apt-get install" in promotion.GIT_INSTALL[-1]
        and "--no-install-recommends git" in promotion.GIT_INSTALL[-1]
    )
    assert not [step for step in plain if "apt-get" in json.dumps(step)]
    mount = [i for i, (name, _args) in enumerate(with_git) if name == "withMountedDirectory"]
    assert len(mount) == 1 and mount[0] > shared + 1


def test_the_git_config_names_the_author_and_turns_off_the_checkouts_hooks_and_helpers() -> None:
    ctr = query(promotion.git_toolbox(repo_source(), git_token=_secret("git", GIT_TOKEN), **AUTHOR))
    env = _env(ctr)
    pairs = [
        (env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"])
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    ]
    assert pairs == promotion.git_config(AUTHOR["author_name"], AUTHOR["author_email"], True)
    assert {("user.name", "Release Bot"), ("user.email", "release-bot@example.com")} <= set(pairs)
    assert {("core.hooksPath", "/dev/null"), ("commit.gpgSign", "false"), ("safe.directory", "/repo")} <= set(
        pairs
    )
    assert pairs[-2:] == [("credential.helper", ""), ("credential.helper", "deliver")]
    assert _secret_vars(ctr) == {promotion.TOKEN_ENV: GIT_TOKEN}
    files = [
        a for n, a in ctr.steps() if n == "withNewFile" and a["path"] == promotion.CREDENTIAL_HELPER_PATH
    ]
    assert files == [
        {
            "path": promotion.CREDENTIAL_HELPER_PATH,
            "contents": promotion.CREDENTIAL_HELPER,
            "permissions": 0o755,
        }
    ]
    assert GIT_TOKEN not in set(_strings(ctr))
    # Without a token: no helper, no secret, the checkout's own helpers as they are.
    bare = query(promotion.git_toolbox(repo_source(), **AUTHOR))
    assert not [k for k in _env(bare).values() if k == "credential.helper"]
    assert _secret_vars(bare) == {}
    assert promotion.CREDENTIAL_HELPER_PATH not in json.dumps(bare.shape())


def test_the_ledger_functions_refuse_no_author_and_credentials_in_the_remote_url() -> None:
    with pytest.raises(ValueError, match="author"):
        promotion.git_toolbox(repo_source(), author_name=" ", author_email="a@example.com")
    for url in ("https://user:secret@git.example.com/p.git", "https://secret@git.example.com/p.git"):
        with pytest.raises(ValueError, match="must not hold"):
            promotion.git_toolbox(repo_source(), remote_url=url, **AUTHOR)
    for url in ("git@github.com:org/p.git", "ssh://git@github.com/org/p.git", "http://git.example.com/p.git"):
        with pytest.raises(ValueError, match="https URL"):
            promotion.git_toolbox(repo_source(), remote_url=url, **AUTHOR)


def test_promote_runs_deliver_promote_on_the_repo_with_git_and_returns_the_repo_after_it() -> None:
    platform = LlmPlatform(source=dagger.dag.directory().with_new_file("not-the-repo", "x"))
    outcome, ctr, repo = _ledger_commit(
        platform.promote(
            to="prod",
            repo=repo_source(),
            only=["vllm", "qwen"],
            approved_by="alice",
            break_glass="incident 42",
            dry_run=True,
            push=True,
            username="oauth2accesstoken",
            password=_secret("registry", REGISTRY_PASSWORD),
            git_token=_secret("git", GIT_TOKEN),
            remote_url="https://git.example.com/platform.git",
            **AUTHOR,
        )
    )
    assert outcome == OUTCOME
    assert _exec_tails(ctr) == [
        [
            "promote", "--to", "prod", "--only", "vllm", "--only", "qwen", "--approved-by", "alice",
            "--break-glass", "incident 42", "--dry-run", "--push", "--username", "oauth2accesstoken",
            "--json",
        ]
    ]  # fmt: skip
    assert ["git", "remote", "set-url", "origin", "https://git.example.com/platform.git"] in ctr.execs()
    # The repo it returns is /repo of that very exec (read from it, not run again).
    assert repo.steps()[-1] == ("directory", {"path": toolbox.WORKDIR})
    assert repo.parent is not None and repo.parent.shape() == ctr.shape()
    # Installed from and run on the repo with .git, not the constructor's source.
    mounts = ctr.calls("withMountedDirectory")
    assert len(mounts) == 1 and is_repo(mounts[0]["source"])
    assert sorted(_repo_inputs(ctr.steps())) == ["README.md", "ci/delivery", "pyproject.toml", "uv.lock"]
    assert "not-the-repo" not in json.dumps(ctr.shape())
    # Secrets only as secret variables (the CLI's own for the registry), each run fresh.
    assert _secret_vars(ctr) == {"DELIVER_REGISTRY_PASSWORD": REGISTRY_PASSWORD, "GIT_TOKEN": GIT_TOKEN}
    assert not {GIT_TOKEN, REGISTRY_PASSWORD} & set(_strings(ctr))
    assert _env(ctr)["DELIVER_RUN_ID"].isdigit()


def test_each_ledger_function_runs_its_cli_command_and_the_cli_accepts_them() -> None:
    from delivery import cli

    platform = LlmPlatform(source=repo_source())
    runs = {
        "promote": platform.promote(to="staging", repo=repo_source(), **AUTHOR),
        "rollback": platform.rollback(
            env="prod", repo=repo_source(), to="prod-20261201T100000Z-1a2b", break_glass="sev1", **AUTHOR
        ),
        "hold_release": platform.hold_release(env="prod", repo=repo_source(), push=True, **AUTHOR),
        "verify_release": platform.verify_release(
            env="staging", evidence="https://ci.example.com/run/7", repo=repo_source(), **AUTHOR
        ),
    }
    expected = {
        "promote": ["promote", "--to", "staging", "--json"],
        "rollback": [
            "rollback", "--env", "prod", "--to", "prod-20261201T100000Z-1a2b", "--break-glass", "sev1",
            "--json",
        ],
        "hold_release": ["hold", "release", "--env", "prod", "--push", "--json"],
        "verify_release": [
            "verify-release", "--env", "staging", "--evidence", "https://ci.example.com/run/7", "--json"
        ],
    }  # fmt: skip
    for name, coro in runs.items():
        outcome, ctr, repo = _ledger_commit(coro)
        assert outcome == OUTCOME
        assert _exec_tails(ctr) == [expected[name]], name
        assert _parse(cli.main_group, expected[name]), name
        assert any(argv == list(promotion.GIT_INSTALL) for argv in ctr.execs()), name
        assert repo.parent is not None and repo.parent.shape() == ctr.shape(), name
        assert _secret_vars(ctr) == {} and "DELIVER_RUN_ID" in _env(ctr), name
        assert not [argv for argv in ctr.execs() if argv[:2] == ["git", "remote"]], name


def test_status_and_history_read_the_files_only() -> None:
    from delivery import cli

    platform = LlmPlatform(source=repo_source())
    status = _stdout_of(platform.status())
    assert _exec_tails(status) == [["status"]]
    assert _exec_tails(_stdout_of(platform.status(as_json=True))) == [["status", "--json"]]
    history = _stdout_of(platform.history(env="prod", as_json=True))
    assert _exec_tails(history) == [["history", "--env", "prod", "--json"]]
    for ctr in (status, history):
        assert all("apt-get" not in " ".join(argv) for argv in ctr.execs())  # the plain toolbox
        (mount,) = ctr.calls("withMountedDirectory")
        assert is_repo(mount["source"])  # the constructor's source: .git left out
        assert _parse(cli.main_group, _exec_tails(ctr)[0])
    assert "DELIVER_RUN_ID" in _env(status)  # the clock moves: every call runs
    assert "DELIVER_RUN_ID" not in _env(history)  # the ledger is a file: cached like the checks


# ----------------------------------------- the container's git settings with this machine's git


def _as_in_the_container(ctr: Node, tmp_path: Path) -> dict[str, str]:
    """The environment git gets in ``ctr``, here: its GIT_* variables and secrets, its helper on PATH,
    no global or system config (the container has none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for args in ctr.calls("withNewFile"):
        if args["path"] == promotion.CREDENTIAL_HELPER_PATH:
            helper = bin_dir / Path(args["path"]).name
            helper.write_text(args["contents"])
            helper.chmod(args["permissions"])
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in _env(ctr).items() if k.startswith(("GIT_", "DELIVER_RUN_ID"))}
    return {
        "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **env,
        **_secret_vars(ctr),
    }


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_credential_helper_hands_git_the_token_and_shadows_the_checkouts_helpers(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    _git(tmp_path, "init", "-q", str(checkout))
    # A helper of the checkout's own (a keychain on the host): without the reset it would answer first.
    _git(
        checkout,
        "config",
        "credential.helper",
        "!f() { echo username=host; echo password=host-keychain; }; f",
    )
    ctr = query(
        promotion.git_toolbox(
            repo_source(), git_token=_secret("git", GIT_TOKEN), git_username="oauth2", **AUTHOR
        )
    )
    request = "protocol=https\nhost=git.example.com\npath=platform.git\n\n"
    answer = _git(checkout, "credential", "fill", env=_as_in_the_container(ctr, tmp_path), stdin=request)
    assert "username=oauth2" in answer.splitlines() and f"password={GIT_TOKEN}" in answer.splitlines()
    assert "host-keychain" not in answer


def test_a_ledger_commit_lands_and_pushes_with_the_containers_git_settings(tmp_path: Path) -> None:
    """The exact command verify_release runs, with the container's git settings, on a clean clone whose
    own hook and signing settings would break in the engine: it commits as the author and pushes."""
    seed = tmp_path / "seed"
    seed.mkdir()
    for name in ("pyproject.toml", ".gitattributes"):
        shutil.copy2(REPO / name, seed / name)
    for name in ("environments", "modelcars", "clusters", "tofu"):
        shutil.copytree(REPO / name, seed / name, ignore=shutil.ignore_patterns(".terraform", "*.tfplan"))
    _git(seed, "init", "-q", "-b", "main")
    _git(seed, "add", "-A")
    _git(seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
    origin = tmp_path / "origin.git"
    _git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    hook = work / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'a host tool the engine does not have' >&2\nexit 1\n")
    hook.chmod(0o755)
    _git(work, "config", "commit.gpgSign", "true")

    platform = LlmPlatform(source=repo_source())
    _, ctr, _ = _ledger_commit(
        platform.verify_release(
            env="dev",
            evidence="https://ci.example.com/run/1",
            repo=repo_source(),
            push=True,
            git_token=_secret("git", GIT_TOKEN),
            **AUTHOR,
        )
    )
    argv = ctr.execs()[-1]
    assert argv[:3] == ["deliver", "--repo", toolbox.WORKDIR]
    env = _as_in_the_container(ctr, tmp_path)
    proc = subprocess.run(
        [argv[0], argv[1], str(work), *argv[3:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["ok"] is True and outcome["pushed"] is True
    pushed = _git(origin, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%G?", "main").strip()
    assert pushed == "Release Bot <release-bot@example.com>|Release Bot <release-bot@example.com>|N"
    assert _git(origin, "rev-parse", "main").strip() == outcome["commit"]
    history = subprocess.run(
        ["deliver", "--repo", str(work), "history", "--env", "dev", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    (entry,) = json.loads(history.stdout)["entries"]
    assert entry["actor"] == "Release Bot <release-bot@example.com>"
    assert entry["kind"] == "verify" and entry["note"] == "https://ci.example.com/run/1"
