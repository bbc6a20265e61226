"""The CI files (.github/workflows, .github/actions, .gitlab-ci.yml) are checked, not just written.

* Outside judges, run for real: actionlint (the workflows), zizmor offline with the pedantic persona
  (GitHub Actions security; .github/zizmor.yml disables one rule, and that rule must still fire without
  it), and check-jsonschema's vendored schemas (GitHub workflows and actions, Dependabot, GitLab CI).
  A missing tool skips locally and fails in CI (conftest.require_tool). Each judge is also shown a file
  with one planted mistake and must fail it.
* Every `dagger call` in the files (multi-line shell, `${{ }}`, `$VAR`, bash arrays and `set --` lists
  expanded) names a function of the module as the SDK registers it (test_dagger_module's registration),
  with options that function has, its required ones given, secrets as `env://NAME`, and a chain (`export
  --path`, `outcome`, `changes`) its return type has. Every `deliver` command parses with the real CLI.
* The rules of docs/ci.md: actions pinned by commit SHA with a `# vX.Y.Z` comment, the Dagger CLI pinned to
  dagger.json's engineVersion (sha256-checked), least-privilege permissions per job, credentials never
  persisted in a checkout, secrets only from masked variables, a plain-CLI twin for every Dagger job,
  apply and promote only from protected environments, and the environment lists matching environments/.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, require_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
SCRIPTS = sorted((REPO / ".github" / "scripts").glob("*.sh"))
GITLAB = REPO / ".gitlab-ci.yml"
ZIZMOR_CONFIG = REPO / ".github" / "zizmor.yml"
CLI_SWITCH = "DELIVER_WITHOUT_DAGGER"


def _envs() -> dict[str, dict[str, Any]]:
    return {
        p.parent.name: yaml.safe_load(p.read_text())
        for p in sorted((REPO / "environments").glob("*/config.yaml"))
    }


ENVS = sorted(_envs())
PROMOTABLE = sorted(e for e, cfg in _envs().items() if (cfg.get("promotion") or {}).get("from"))


class GitLabLoader(yaml.SafeLoader):
    """YAML with GitLab's `!reference [job, key]` tag (kept as a marker, expanded by `_gitlab`)."""


@dataclasses.dataclass(frozen=True)
class Reference:
    path: tuple[str, ...]


GitLabLoader.add_constructor(
    "!reference", lambda loader, node: Reference(tuple(loader.construct_sequence(node)))
)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=GitLabLoader)  # a SafeLoader with one tag more
    assert isinstance(data, dict), path
    return data


def _on(workflow: dict[str, Any]) -> dict[str, Any]:
    """The `on:` mapping (PyYAML reads the bare key `on` as True)."""
    on = workflow.get("on", workflow.get(True))
    return on if isinstance(on, dict) else {name: None for name in ([on] if isinstance(on, str) else on)}


def _run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


# --------------------------------------------------------------------------- the outside judges


def _actionlint(root: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck and pyflakes are left out (-shellcheck= -pyflakes=): they are not among the tools
    # .ci/install provides, so whether they ran would depend on the machine.
    files = sorted(str(p) for p in (root / ".github" / "workflows").glob("*.yml"))
    return _run(require_tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", *files, cwd=root)


def _zizmor(root: Path, *extra: str) -> list[dict[str, Any]]:
    proc = _run(
        require_tool("zizmor"),
        "--offline",
        "--persona=pedantic",
        "--format=json",
        *extra,
        ".github/",
        cwd=root,
    )
    assert proc.stdout.strip(), proc.stderr
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list), proc.stdout
    assert (proc.returncode == 0) == (not findings), (proc.returncode, proc.stderr)
    return findings


def _schema(schema: str, *files: Path, transform: str = "") -> subprocess.CompletedProcess[str]:
    argv = [require_tool("check-jsonschema"), "--builtin-schema", schema]
    if transform:
        argv += ["--data-transform", transform]
    return _run(*argv, *(str(f) for f in files))


def test_actionlint_passes_the_workflows() -> None:
    proc = _actionlint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_with_the_pedantic_persona() -> None:
    findings = _zizmor(REPO, "--config", str(ZIZMOR_CONFIG))
    assert findings == [], json.dumps(findings, indent=1)[:4000]


def test_the_one_disabled_zizmor_rule_still_fires_without_the_config() -> None:
    """A disabled rule that no longer fires would be a stale exception: it must still have findings."""
    config = yaml.safe_load(ZIZMOR_CONFIG.read_text())
    disabled = {name for name, rule in (config.get("rules") or {}).items() if rule.get("disable")}
    assert disabled == {"self-repository"}
    fired = {f["ident"] for f in _zizmor(REPO, "--no-config")}
    assert fired == disabled, fired


def test_the_vendored_schemas_accept_the_ci_files() -> None:
    checks = [
        ("vendor.github-workflows", WORKFLOWS, ""),
        ("vendor.github-actions", ACTIONS, ""),
        ("vendor.dependabot", [REPO / ".github" / "dependabot.yml"], ""),
        ("vendor.gitlab-ci", [GITLAB], "gitlab-ci"),
    ]
    for schema, files, transform in checks:
        assert files, schema
        proc = _schema(schema, *files, transform=transform)
        assert proc.returncode == 0, f"{schema}: {proc.stdout}{proc.stderr}"


def _planted(tmp_path: Path, relative: str, old: str, new: str) -> Path:
    """A copy of .github/ and .gitlab-ci.yml with ``old`` replaced once by ``new`` in ``relative``."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / ".github", root / ".github")
    shutil.copy2(GITLAB, root / ".gitlab-ci.yml")
    subprocess.run(["git", "init", "-q", str(root)], check=True)  # zizmor and actionlint want a repo
    target = root / relative
    text = target.read_text()
    assert old in text, (relative, old)
    target.write_text(text.replace(old, new, 1))
    return root


CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"


def test_each_judge_fails_a_planted_mistake(tmp_path: Path) -> None:
    # zizmor: an action pinned by a tag instead of a commit
    unpinned = _planted(tmp_path / "z", ".github/workflows/checks.yml", CHECKOUT, "actions/checkout@v7")
    idents = {f["ident"] for f in _zizmor(unpinned, "--config", str(unpinned / ".github" / "zizmor.yml"))}
    assert "unpinned-uses" in idents, idents
    # zizmor: a token left in the checkout's .git/config
    keep = "# v7.0.1\n        with:\n          persist-credentials: false\n"
    creds = _planted(tmp_path / "c", ".github/workflows/checks.yml", keep, "# v7.0.1\n")
    idents = {f["ident"] for f in _zizmor(creds, "--config", str(creds / ".github" / "zizmor.yml"))}
    assert "artipacked" in idents, idents
    # actionlint: an expression naming a context that does not exist
    typo = _planted(tmp_path / "a", ".github/workflows/checks.yml", "vars.DELIVER", "var.DELIVER")
    proc = _actionlint(typo)
    assert proc.returncode != 0 and "undefined variable" in proc.stdout, proc.stdout
    # the GitHub workflow schema: a job without runs-on
    no_runner = _planted(tmp_path / "g", ".github/workflows/checks.yml", "runs-on: ubuntu-24.04", "")
    proc = _schema("vendor.github-workflows", no_runner / ".github" / "workflows" / "checks.yml")
    assert proc.returncode != 0, proc.stdout
    # the GitLab CI schema: an unknown keyword
    bad = _planted(tmp_path / "l", ".gitlab-ci.yml", "  stage: check\n", "  stage: check\n  stages_typo: 1\n")
    proc = _schema("vendor.gitlab-ci", bad / ".gitlab-ci.yml", transform="gitlab-ci")
    assert proc.returncode != 0, proc.stdout


# --------------------------------------------------------------------------- the shell in the files


@dataclasses.dataclass(frozen=True)
class Script:
    """One shell script of a CI file: a step's `run` or a GitLab job's script lines."""

    where: str  # file: job[/step]
    text: str
    env: dict[str, str]  # the variables GitHub sets for it (workflow + job + step env)


def _github_scripts() -> Iterator[tuple[str, dict[str, Any], dict[str, Any], list[Script]]]:
    """(file, workflow, job, that job's scripts) for every job of every workflow."""
    for path in WORKFLOWS:
        workflow = _load(path)
        for job_id, job in workflow["jobs"].items():
            scripts = []
            for i, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
                    where = f"{path.name}: {job_id}/{step.get('name', i)}"
                    scripts.append(Script(where, step["run"], {k: str(v) for k, v in env.items()}))
            yield path.name, workflow, job, scripts


def _gitlab() -> dict[str, dict[str, Any]]:
    """The GitLab jobs with `extends` and `!reference` resolved (hashes merged, lists replaced)."""
    raw = _load(GITLAB)
    defs = {k: v for k, v in raw.items() if isinstance(v, dict)}

    def deref(value: Any) -> Any:
        if isinstance(value, Reference):
            node: Any = defs
            for key in value.path:
                node = node[key]
            return deref(node)
        if isinstance(value, list):
            out: list[Any] = []
            for item in value:  # a `!reference` in a list is spliced into it (GitLab's rule)
                spliced = deref(item)
                out += spliced if isinstance(item, Reference) and isinstance(spliced, list) else [spliced]
            return out
        if isinstance(value, dict):
            return {k: deref(v) for k, v in value.items()}
        return value

    def resolved(name: str) -> dict[str, Any]:
        job = defs[name]
        parents = job.get("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = _merge(merged, resolved(parent))
        return _merge(merged, {k: v for k, v in job.items() if k != "extends"})

    reserved = {"workflow", "stages", "variables", "default", "include"}
    return {name: deref(resolved(name)) for name in defs if name not in reserved}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _gitlab_script(job: dict[str, Any]) -> str:
    lines: list[str] = []
    for key in ("before_script", "script", "after_script"):
        for line in job.get(key, []):
            lines += line if isinstance(line, list) else [line]
    return "\n".join(lines)


def _all_scripts() -> list[Script]:
    scripts = [s for _f, _w, _j, job_scripts in _github_scripts() for s in job_scripts]
    for path in ACTIONS:
        for i, step in enumerate(_load(path)["runs"]["steps"]):
            if "run" in step:
                scripts.append(Script(f"{path.parent.name}/action.yml: {i}", step["run"], {}))
    scripts += [Script(f".gitlab-ci.yml: {name}", _gitlab_script(job), {}) for name, job in _gitlab().items()]
    scripts += [Script(p.name, p.read_text(), {}) for p in SCRIPTS]
    return scripts


GHA_EXPR = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
ARRAY_ASSIGN = re.compile(r"(?<![\w$])(\w+)\+?=\(([^()]*)\)")
ARRAY_USE = re.compile(r"^\$\{(\w+)\[@\]\}$")
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n", ";;", "|&"}
KEYWORDS = {"if", "then", "elif", "else", "do", "while", "until", "!", "{", "}", "time"}
PLACEHOLDER = "__value__"


def _commands(script: str) -> Iterator[list[str]]:
    """Each simple command of a shell script as tokens, with bash arrays and `set --` lists expanded.

    Backslash-newline continuations are joined, `${{ }}` expressions become one placeholder word,
    comments are dropped, keywords (`if`, `then`, `do`, ...) and leading VAR=value assignments are
    stripped, and a command stops at a redirection. ``"${NAME[@]}"`` and ``"$@"`` become every token
    any assignment to that list in the script gives it (all the options that may be passed).
    """
    text = GHA_EXPR.sub(PLACEHOLDER, _uncommented(script).replace("\\\n", " "))
    arrays: dict[str, list[str]] = {}
    for match in ARRAY_ASSIGN.finditer(text):
        arrays.setdefault(match.group(1), []).extend(shlex.split(match.group(2), comments=True))
    text = ARRAY_ASSIGN.sub(":", text)
    commands = list(_simple_commands(text))
    for argv in commands:  # POSIX sh lists: `set -- ...` (`set -- "$@" X` appends)
        if argv[:2] == ["set", "--"]:
            arrays.setdefault("@", []).extend(t for t in argv[2:] if t != "$@")
    for argv in commands:
        if argv[:2] == ["set", "--"]:
            continue
        if Path(argv[0]).name not in {"dagger", "deliver"}:
            yield argv  # "$@" in a shell function is its own arguments: only our commands are expanded
            continue
        expanded: list[str] = []
        for token in argv:
            use = ARRAY_USE.match(token)
            name = use.group(1) if use else ("@" if token == "$@" else None)
            if name is None:
                expanded.append(token)
            else:
                assert name in arrays, f"{token} is expanded but never assigned in:\n{script}"
                expanded += arrays[name]
        yield expanded


def _simple_commands(text: str) -> Iterator[list[str]]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace = " \t\r"  # newlines separate commands
    lexer.wordchars += "$:{}[]@+=%,/.-*~!#?^"
    lexer.commenters = ""
    current: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
            continue
        if token in SEPARATORS:
            if current:
                yield current
            current = []
            continue
        if token in {">", ">>", "<", "2>", "&>"} or token.startswith(">"):
            if current and current[-1].isdigit():
                current.pop()  # `2>file`: the fd number is not an argument
            skip_next = True
            if current:
                yield current
            current = []
            continue
        if not current and (token in KEYWORDS or re.match(r"^\w+=", token)):
            continue
        if not current and token in {"for", "case"}:
            current = ["__loop__"]  # `for x in WORDS` is no command
            continue
        current.append(token)
    if current:
        yield current


def _uncommented(text: str) -> str:
    """``text`` without shell comments: an unquoted ``#`` that starts a word, up to the end of its line."""
    out: list[str] = []
    quote, i = "", 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                out.append(text[i : i + 2])
                i += 2
                continue
            quote = "" if char == quote else quote
        elif char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def test_the_shell_reader_expands_continuations_expressions_and_lists() -> None:
    script = (
        "hf=()\n"
        'if [ -n "$HF_TOKEN" ]; then hf=(--hf-token env://HF_TOKEN); fi  # optional\n'
        "for name in $NAMES; do\n"
        '  dagger --progress=plain call modelcar-publish --name "$name" --env ${{ inputs.env }} \\\n'
        '    "${hf[@]}" changes export --path . > out/x.json 2>/dev/null\n'
        "done\n"
        "set --\n"
        'for a in $ONLY; do set -- "$@" --only "$a"; done\n'
        'X=1 .venv/bin/deliver promote --to "$TO" "$@" --json\n'
    )
    commands = [c for c in _commands(script) if c[0] in {"dagger", ".venv/bin/deliver"}]
    assert commands == [
        [
            "dagger",
            "--progress=plain",
            "call",
            "modelcar-publish",
            "--name",
            "$name",
            "--env",
            PLACEHOLDER,
            "--hf-token",
            "env://HF_TOKEN",
            "changes",
            "export",
            "--path",
            ".",
        ],
        [".venv/bin/deliver", "promote", "--to", "$TO", "--only", "$a", "--json"],
    ]


# --------------------------------------------------------------------------- `dagger call` vs the module


def _kebab(name: str) -> str:
    return name.replace("_", "-")


# What the chains in the CI files call on core types (the Dagger API, dagger-io 0.21.8's client):
# function -> {option: takes a value}. Anything else in a chain is refused here until it is added.
CORE_CHAINS: dict[str, dict[str, tuple[str, dict[str, bool]]]] = {
    "Directory": {"export": ("String", {"path": True, "wipe": False})},
    "Changeset": {"export": ("String", {"path": True})},
}
DAGGER_GLOBAL = {"--progress": True, "--silent": False, "-s": False, "-q": False, "--debug": False}
SECRET_REF = re.compile(r"^env://([A-Z_][A-Z0-9_]*)$")


@dataclasses.dataclass
class DaggerCall:
    function: str
    args: dict[str, list[str]]
    chain: list[str]


def _module() -> tuple[Any, dict[str, Any]]:
    """The module's main object and every object, as the SDK registers them (test_dagger_module)."""
    import test_dagger_module as mod  # it imports the SDK the way the module's runtime has it

    return mod.main_object(), mod.registration()


def _parse_flags(
    tokens: list[str], i: int, known: dict[str, bool], what: str
) -> tuple[dict[str, list[str]], int]:
    """``--flag [value]`` pairs from tokens[i:] until a positional; ``known``: flag -> takes a value."""
    given: dict[str, list[str]] = {}
    while i < len(tokens) and tokens[i].startswith("-"):
        flag, eq, value = tokens[i].partition("=")
        assert flag in known, f"{what}: no option {flag} (has {sorted(known)})"
        if known[flag] and not eq:
            assert i + 1 < len(tokens), f"{what}: {flag} needs a value"
            value, i = tokens[i + 1], i + 1
        elif not known[flag] and eq:
            assert value in {"true", "false"}, f"{what}: {flag} is a flag, not {value!r}"
        given.setdefault(flag, []).append(value)
        i += 1
    return given, i


def check_dagger(argv: list[str], main: Any, objects: dict[str, Any]) -> DaggerCall | None:
    """Check one `dagger ...` command against the module; the call it makes (None: not a call)."""
    _global, i = _parse_flags(argv, 1, DAGGER_GLOBAL, "dagger")
    verb = argv[i] if i < len(argv) else ""
    if verb in {"version", "functions"}:
        return None
    assert verb == "call", f"dagger {verb}: only `dagger call` (and version/functions) is used: {argv}"
    constructor = {f"--{_kebab(n)}": True for n in main.constructor.args}
    _ctor, i = _parse_flags(argv, i + 1, {**constructor, "-o": True, "--output": True}, "dagger call")
    assert i < len(argv), f"no function in {argv}"
    functions = {_kebab(name): fn for name, fn in main.functions.items()}
    name = argv[i]
    assert name in functions, f"dagger call {name}: the module has no such function ({sorted(functions)})"
    fn = functions[name]
    options = {f"--{_kebab(a)}": arg for a, arg in fn.args.items()}
    takes = {flag: arg.type.rstrip("?") != "Boolean" for flag, arg in options.items()}
    given, i = _parse_flags(argv, i + 1, takes, f"dagger call {name}")
    for flag, values in given.items():
        arg = options[flag]
        assert len(values) == 1 or arg.type.startswith("["), f"{name}: {flag} given {len(values)} times"
        if arg.type.rstrip("?") == "Secret":
            for value in values:
                assert SECRET_REF.match(value), (
                    f"{name} {flag}: a secret is passed as env://NAME, not {value!r}"
                )
    missing = [a for a in fn.required() if f"--{_kebab(a)}" not in given]
    assert not missing, f"dagger call {name}: required {missing} not given in {argv}"
    # the chain: fields and functions of what the function returns
    returns, chain = fn.returns.rstrip("?"), argv[i:]
    j = 0
    while j < len(chain):
        step = chain[j]
        if returns in objects:
            obj = objects[returns]
            fields = {_kebab(f): t for f, t in obj.fields.items()}
            assert step in fields, f"{name}: {returns} has no field {step!r} ({sorted(fields)})"
            returns, j = fields[step].rstrip("?"), j + 1
            continue
        assert returns in CORE_CHAINS and step in CORE_CHAINS[returns], f"{name}: no {returns}.{step} here"
        returns, flags = CORE_CHAINS[returns][step]
        sub, k = _parse_flags(chain, j + 1, {f"--{f}": v for f, v in flags.items()}, f"{returns}.{step}")
        assert step != "export" or "--path" in sub, f"{name}: export needs --path"
        j = k
    assert returns in {"String", "Boolean", "Int"}, f"{name}: the chain ends on {returns}, not on a value"
    return DaggerCall(fn.name, given, chain)


def _dagger_commands() -> list[tuple[Script, list[str]]]:
    return [(s, argv) for s in _all_scripts() for argv in _commands(s.text) if Path(argv[0]).name == "dagger"]


def test_every_dagger_call_names_a_module_function_with_its_options() -> None:
    main, objects = _module()
    called: set[str] = set()
    for script, argv in _dagger_commands():
        try:
            call = check_dagger(argv, main, objects)
        except AssertionError as err:
            raise AssertionError(f"{script.where}: {err}") from None
        if call is None:
            continue
        called.add(call.function)
        # a secret handed to the module comes from a masked variable: on GitHub, a secret (or the token)
        for flag, values in call.args.items():
            for value in values:
                match = SECRET_REF.match(value)
                if match and script.env:
                    source = script.env.get(match.group(1), "")
                    assert re.search(r"\$\{\{\s*(secrets\.|github\.token)", source), (
                        f"{script.where}: {flag} env://{match.group(1)} is not set from a secret"
                    )
    # what the pipelines are for
    assert {
        "config_check",
        "layers_check",
        "substrate_check",
        "validate",
        "tofu_plan",
        "tofu_apply",
        "modelcar_publish",
        "promote",
        "status",
    } <= called, called


PROMOTE = ["dagger", "call", "promote", "--to", "prod", "--author-name", "a", "--author-email", "b"]
PUBLISH = ["dagger", "call", "modelcar-publish", "--name", "m", "--env", "dev", "--author-name", "a"]
PUBLISH += ["--author-email", "b"]


def test_the_dagger_checker_refuses_what_the_module_does_not_have() -> None:
    main, objects = _module()
    good = [
        "dagger",
        "call",
        "tofu-plan",
        "--env",
        "dev",
        "--credentials",
        "env://C",
        "export",
        "--path",
        "o",
    ]
    assert check_dagger(good, main, objects) is not None
    planted = {
        "no such function": ["dagger", "call", "tofu-destroy", "--env", "dev"],
        "no option --nope": ["dagger", "call", "validate", "--nope", "x"],
        "required": ["dagger", "call", "tofu-apply", "--env", "dev", "--credentials", "env://C"],
        "env://NAME": ["dagger", "call", "tofu-plan", "--env", "dev", "--credentials", "plaintext"],
        "no field": [*PROMOTE, "out"],
        "export needs --path": ["dagger", "call", "validate-report", "export"],
        "a flag": [*PROMOTE, "--dry-run=yes"],
        "chain ends": [*PUBLISH],
    }
    for message, argv in planted.items():
        with pytest.raises(AssertionError, match=re.escape(message)):
            check_dagger(argv, main, objects)


# --------------------------------------------------------------------------- `deliver` vs the CLI


def check_deliver(argv: list[str]) -> list[str]:
    """Parse ``deliver ARGV`` with the real command tree (strictly); returns the command path."""
    import click

    from delivery import cli

    ctx = cli.main_group.make_context("deliver", [], resilient_parsing=True)
    command: click.Command = cli.main_group
    args, path = list(argv[1:]), []
    while isinstance(command, click.Group):
        assert args, f"{argv}: a command of `deliver {' '.join(path)}` is missing"
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{argv}: `deliver {' '.join([*path, name])}` is no command"
        path.append(name)
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    try:
        command.make_context(path[-1], args, parent=ctx)
    except click.MissingParameter as err:
        raise AssertionError(f"{argv}: {err.format_message()}") from None
    except click.BadParameter as err:
        # a value only the runner knows ($VAR, ${{ }}) is not the CLI's to judge here; any other is
        opts = set(err.param.opts) if err.param is not None else set()
        values = [args[k + 1] for k, a in enumerate(args[:-1]) if a in opts]
        values += [a.partition("=")[2] for a in args if a.partition("=")[0] in opts and "=" in a]
        if not any("$" in v or PLACEHOLDER in v for v in values):
            raise AssertionError(f"{argv}: {err.format_message()}") from None
    except click.UsageError as err:
        raise AssertionError(f"{argv}: {err.format_message()}") from None
    return path


def _deliver_commands() -> list[tuple[Script, list[str]]]:
    return [
        (s, argv) for s in _all_scripts() for argv in _commands(s.text) if Path(argv[0]).name == "deliver"
    ]


def test_every_deliver_command_parses_with_the_cli() -> None:
    used = set()
    for script, argv in _deliver_commands():
        try:
            used.add(" ".join(check_deliver(argv)))
        except AssertionError as err:
            raise AssertionError(f"{script.where}: {err}") from None
    assert {
        "config check",
        "layers render",
        "substrate-check",
        "validate",
        "plan",
        "apply",
        "modelcar publish",
        "promote",
        "status",
    } <= used, used


def test_the_deliver_checker_refuses_what_the_cli_does_not_have() -> None:
    assert check_deliver(["deliver", "promote", "--to", "$TO", "--dry-run"]) == ["promote"]
    for message, argv in {
        "is no command": ["deliver", "promte", "--to", "prod"],
        "No such option": ["deliver", "promote", "--to", "prod", "--aproved-by", "x"],
        "Missing option": ["deliver", "apply", "--env", "dev"],
        "is missing": ["deliver", "modelcar"],
    }.items():
        with pytest.raises(AssertionError, match=message):
            check_deliver(argv)


# --------------------------------------------------------------------------- the rules of docs/ci.md

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")


def test_actions_are_pinned_by_commit_with_their_version() -> None:
    seen = 0
    for path in [*WORKFLOWS, *ACTIONS]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            match = USES.match(line)
            if not match:
                continue
            ref, rest = match.groups()
            seen += 1
            if ref.startswith("./"):
                assert (REPO / ref).exists(), f"{path.name}:{n}: {ref} does not exist"
                continue
            assert PINNED.match(ref), f"{path.name}:{n}: {ref} is not pinned by a 40-hex commit"
            assert re.match(r"^\s*#\s*v\d+\.\d+\.\d+\s*$", rest), f"{path.name}:{n}: no `# vX.Y.Z` comment"
    assert seen


def test_one_commit_per_action_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text().splitlines():
            match = USES.match(line)
            if match and "@" in match.group(1):
                action, sha = match.group(1).split("@")
                pins.setdefault(action, set()).add(sha + match.group(2).strip())
    assert all(len(v) == 1 for v in pins.values()), pins


def test_the_dagger_cli_is_the_modules_engine_version_checked_by_sha256() -> None:
    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
    installer = (REPO / ".github" / "scripts" / "install-dagger.sh").read_text()
    version = re.search(r"^DAGGER_VERSION=(\S+)$", installer, re.M)
    sha = re.search(r"^DAGGER_SHA256_LINUX_AMD64=([0-9a-f]{64})$", installer, re.M)
    assert version and f"v{version.group(1)}" == engine
    assert sha and "| sha256sum -c -" in installer
    sdk = re.search(r'"dagger-io==([0-9.]+)"', (REPO / "ci" / "dagger" / "pyproject.toml").read_text())
    assert sdk and sdk.group(1) == version.group(1)
    # both CI systems install it from that one script, and nothing else installs a dagger
    action = _load(REPO / ".github" / "actions" / "dagger" / "action.yml")
    assert [s["run"] for s in action["runs"]["steps"]] == [
        "sudo bash .github/scripts/install-dagger.sh /usr/local/bin"
    ]
    assert "bash .github/scripts/install-dagger.sh /usr/local/bin" in _gitlab()["checks"]["before_script"]
    for path in [*WORKFLOWS, GITLAB]:
        text = path.read_text()
        assert "dagger-for-github" not in text and "dl.dagger.io" not in text, path.name


def _job_runs(job: dict[str, Any], what: str) -> bool:
    return any(Path(c[0]).name == what for s in job for c in _commands(s.text))


def test_github_jobs_have_least_privilege_and_no_persisted_credentials() -> None:
    writes = {
        "contents": {"modelcar-publish.yml", "promote.yml"},
        "pull-requests": {"substrate-env.yml", "substrate.yml"},
        "actions": set(),  # read only (promote: who approved)
    }
    for name, workflow, job, _scripts in _github_scripts():
        assert workflow.get("permissions") == {}, f"{name}: the workflow's default permissions are not none"
        assert "permissions" in job, f"{name}: a job without its own permissions"
        for scope, level in (job["permissions"] or {}).items():
            assert scope in {"contents", "pull-requests", "actions"}, f"{name}: permission {scope}"
            if level == "write":
                assert name in writes[scope], f"{name}: {scope}: write"
        assert "secrets: inherit" not in yaml.safe_dump(job)
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{name}: a checkout keeps its token"
                )


def test_secrets_reach_scripts_only_through_masked_variables() -> None:
    for script in _all_scripts():
        assert not re.search(r"\$\{\{\s*secrets\.", script.text), (
            f"{script.where}: a secret inlined in a script"
        )
    for name, _workflow, job, _scripts in _github_scripts():
        for step in job.get("steps", []):
            for key, value in (step.get("with") or {}).items():
                assert "secrets." not in str(value), f"{name}: a secret given to an action ({key})"


def test_every_dagger_job_has_a_plain_cli_twin() -> None:
    github: dict[str, dict[str, list[str]]] = {}
    for name, _workflow, job, scripts in _github_scripts():
        condition = str(job.get("if", ""))
        kinds = github.setdefault(name, {"dagger": [], "cli": []})
        steps = [str(s.get("uses", "")) + str(s.get("run", "")) for s in job.get("steps", [])]
        if _job_runs(scripts, "dagger"):
            assert f"vars.{CLI_SWITCH} != 'true'" in condition, f"{name}: {job.get('name')}: no switch"
            assert any(s == "./.github/actions/dagger" for s in steps), f"{name}: dagger is not installed"
            kinds["dagger"].append(job["name"])
        elif _job_runs(scripts, "deliver"):
            assert f"vars.{CLI_SWITCH} == 'true'" in condition, f"{name}: {job.get('name')}: no switch"
            assert "bash .ci/install" in steps, f"{name}: {job.get('name')}: no `bash .ci/install`"
            kinds["cli"].append(job["name"])
    for name, kinds in github.items():
        assert [n.replace("(Dagger)", "") for n in kinds["dagger"]] == [
            n.replace("(plain CLI)", "") for n in kinds["cli"]
        ], f"{name}: {kinds}"
    assert sum(len(k["dagger"]) for k in github.values()) >= 6
    jobs = _gitlab()
    for name, job in jobs.items():
        if name.startswith(".") or name.endswith(":cli"):
            continue
        if _job_runs([Script(name, _gitlab_script(job), {})], "dagger"):
            twin = jobs.get(f"{name}:cli")
            assert twin is not None, f".gitlab-ci.yml: {name} has no {name}:cli"
            assert "bash .ci/install" in twin["before_script"], f"{name}:cli"
            assert _job_runs([Script(name, _gitlab_script(twin), {})], "deliver"), f"{name}:cli"
            assert _gitlab_switch(job) == "dagger" and _gitlab_switch(twin) == "cli", name


def _gitlab_switch(job: dict[str, Any]) -> str:
    """Which side of DELIVER_WITHOUT_DAGGER a GitLab job's rules put it on."""
    for rule in job.get("rules", []):
        condition, never = rule.get("if", ""), rule.get("when") == "never"
        if f'${CLI_SWITCH} == "true"' in condition:
            return "dagger" if never else "cli"
        if f'${CLI_SWITCH} != "true"' in condition:
            return "cli" if never else "dagger"
    return "both"


def test_apply_and_promote_run_only_from_protected_environments() -> None:
    for name, _workflow, job, scripts in _github_scripts():
        commands = [c for s in scripts for c in _commands(s.text)]
        touches = [
            c for c in commands if {"tofu-apply", "apply", "promote"} & set(c[:4]) and "--dry-run" not in c
        ]
        if touches:
            environment = str(job.get("environment", ""))
            assert re.match(r"^(substrate|promote)-\$\{\{ inputs\.(env|to) \}\}$", environment), (
                name,
                environment,
            )
    jobs = _gitlab()
    for name in ["substrate:apply", "substrate:apply:cli", "promote", "promote:cli"]:
        job = jobs[name]
        assert job["environment"]["name"] in {"substrate-$ENV", "promote-$PROMOTE_TO"}, name
        assert [r.get("when") for r in job["rules"] if r.get("when") != "never"] == ["manual"], name
    # the reviewed plan: apply takes this run's plan artifact and checks its sha256 against the plan job's
    reusable = _load(REPO / ".github" / "workflows" / "substrate-env.yml")
    for apply, plan in (("apply", "plan"), ("apply-cli", "plan-cli")):
        steps = reusable["jobs"][apply]["steps"]
        downloads = [s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact@")]
        assert downloads and "run-id" not in downloads[0]["with"], apply
        check = next(s for s in steps if "sha256sum --check" in str(s.get("run", "")))
        assert check["env"]["REVIEWED_SHA256"] == f"${{{{ needs.{plan}.outputs.plan-sha256 }}}}"
    assert jobs["substrate:apply"]["needs"] == ["substrate:plan"]


def test_apply_and_promote_run_only_from_the_default_branch() -> None:
    """A dispatch can pick any branch: a branch's HCL or gates must never reach apply or promote."""
    main = "github.ref == 'refs/heads/main'"
    substrate = _load(REPO / ".github" / "workflows" / "substrate.yml")
    for env in ENVS:
        assert main in str(substrate["jobs"][env]["with"]["apply"]), env
    promote = _load(REPO / ".github" / "workflows" / "promote.yml")
    for name, job in promote["jobs"].items():
        assert main in str(job.get("if", "")), name
    jobs = _gitlab()
    for name in ["substrate:apply", "substrate:apply:cli", "promote", "promote:cli"]:
        manual = [r for r in jobs[name]["rules"] if r.get("when") == "manual"]
        assert manual and all("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in r["if"] for r in manual), name


def test_the_promotion_approver_is_recorded() -> None:
    for _name, _workflow, _job, scripts in _github_scripts():
        for script in scripts:
            for argv in _commands(script.text):
                if "promote" in argv[:4] and "--dry-run" not in argv:
                    assert "--approved-by" in argv, f"{script.where}: a promotion without its approver"
                    assert script.env["APPROVER"] == "${{ steps.approver.outputs.login }}", script.where
    for name in ("promote", "promote:cli"):
        argv = next(c for c in _commands(_gitlab_script(_gitlab()[name])) if "promote" in c[:4])
        assert argv[argv.index("--approved-by") + 1] == "$GITLAB_USER_LOGIN", name


def test_the_environment_lists_match_environments() -> None:
    promote = _load(REPO / ".github" / "workflows" / "promote.yml")
    assert sorted(_on(promote)["workflow_dispatch"]["inputs"]["to"]["options"]) == PROMOTABLE
    report = _load(REPO / ".github" / "workflows" / "promote-report.yml")
    assert sorted(report["env"]["PROMOTABLE"].split()) == PROMOTABLE
    assert "schedule" in _on(report)
    raw = _load(GITLAB)
    assert sorted(o for o in raw["variables"]["PROMOTE_TO"]["options"] if o) == PROMOTABLE
    assert sorted(raw[".promotion-report"]["variables"]["PROMOTABLE"].split()) == PROMOTABLE
    substrate = _load(REPO / ".github" / "workflows" / "substrate.yml")
    assert sorted(substrate["jobs"]) == ENVS
    assert sorted(_on(substrate)["workflow_dispatch"]["inputs"]["env"]["options"]) == ENVS
    for hidden in (".substrate-plan", ".substrate-apply"):
        assert sorted(raw[hidden]["parallel"]["matrix"][0]["ENV"]) == ENVS


def test_gitlab_images_are_pinned_to_an_exact_version_or_digest() -> None:
    """An exact version (no `latest`, no floating major); a digest where one could be read (none of
    the GitLab images here: no registry reachable to read docker:27.4.0's digest, docs/ci.md)."""
    for name, job in _gitlab().items():
        images = [job.get("image")] + [
            s["name"] if isinstance(s, dict) else s for s in job.get("services", [])
        ]
        for image in filter(None, images):
            assert re.search(r"@sha256:[0-9a-f]{64}$|:\d+\.\d+\.\d+(-[a-z]+)?$", image), f"{name}: {image}"


# --------------------------------------------------------------------------- the module function they need


def test_modelcar_publish_records_with_git_and_returns_the_changes_of_the_same_exec() -> None:
    """The publish the pipelines commit: git and the author in the container (the ledger's actor), and
    the uri and the repo's changes read from one exec."""
    import test_dagger_module as mod
    from delivery import cli

    fn = mod.functions()["modelcar_publish"]
    assert fn.returns == "Published" and fn.cache == ("Never", None)
    assert fn.required() == ["name", "env", "author_name", "author_email"]
    published = mod.registration()["Published"]
    assert published.fields == {"uri": "String", "changes": "Changeset"}
    seen: list[Any] = []

    def leaf(node: Any, args: dict[str, Any]) -> str:
        seen.append(node)
        return '{"uri": "oci://r.example/m@sha256:' + "0" * 64 + '"}'

    async def both() -> tuple[str, str]:
        platform = mod.LlmPlatform(source=mod.repo_source())
        result = await platform.modelcar_publish(
            "qwen", "dev", **mod.AUTHOR, password=mod._secret("registry", mod.REGISTRY_PASSWORD)
        )
        return result.uri, str(await result.changes.id())

    with mod.engine().answering("Container", "stdout", leaf):
        uri, changes_id = mod.run(both())
    (ctr,) = seen
    assert uri.startswith("oci://r.example/m@sha256:")
    # the changes are the repo of the very exec whose stdout was read (its DELIVER_RUN_ID included)
    assert mod._changeset(mod.engine().nodes[changes_id]).shape() == ctr.shape()
    (argv,) = mod._exec_tails(ctr)
    assert argv == ["modelcar", "publish", "qwen", "--env", "dev", "--json"]
    assert mod._parse(cli.main_group, argv)
    assert ("withExec", {"args": list(mod.promotion.GIT_INSTALL)}) in ctr.steps()
    env = mod._env(ctr)
    keys = {env[k]: env[k.replace("KEY", "VALUE")] for k in env if k.startswith("GIT_CONFIG_KEY_")}
    assert keys["user.name"] == mod.AUTHOR["author_name"] and keys["user.email"] == mod.AUTHOR["author_email"]
    assert mod._secret_vars(ctr) == {"DELIVER_REGISTRY_PASSWORD": mod.REGISTRY_PASSWORD}
    assert "DELIVER_RUN_ID" in env
