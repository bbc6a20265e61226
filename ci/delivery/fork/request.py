"""What ``deliver fork-init`` was asked to set, checked before anything is read or written.

Every value is checked here against the rule of the thing it names (a git URL Argo CD can fetch, a
git branch name, a GCP project ID, a DNS name, an image registry path), and every bad one is
reported at once: one UsageError (exit 2) naming the option, what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from delivery.core.errors import Location, Problem, UsageError, raise_if

_HTTPS = re.compile(r"^https://(?P<host>[A-Za-z0-9.-]+)(:[0-9]{1,5})?/(?P<path>[^\s?#]+)$")
_SSH = re.compile(
    r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9.-]+)(:[0-9]{1,5})?/(?P<path>[^\s?#]+)$"
)
_SCP = re.compile(r"^git@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^\s/:?#][^\s?#]*)$")
_HOST = re.compile(r"^(localhost|([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63})$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_REGISTRY = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$")

URL_FIX = (
    "pass the URL Argo CD clones, e.g. --repo-url https://github.com/ORG/REPO.git "
    "(or ssh://git@HOST/ORG/REPO.git, git@HOST:ORG/REPO.git)"
)


@dataclass(frozen=True)
class ForkRequest:
    """The new values: one repo URL (and branch) for every env, and per env a project, domain, registry."""

    repo_url: str
    branch: str | None = None
    projects: Mapping[str, str] = field(default_factory=dict)
    domains: Mapping[str, str] = field(default_factory=dict)
    registries: Mapping[str, str] = field(default_factory=dict)


def _at(option: str) -> Location:
    return Location("command line", key=option)


def repo_url_problems(url: str) -> list[Problem]:
    """Why ``url`` cannot be the platform repo's URL (empty when it can)."""
    where = _at("--repo-url")
    if url.startswith("http://"):
        return [
            Problem(where, f"{url!r} is plain http: Argo CD would fetch the platform in cleartext", URL_FIX)
        ]
    match = _HTTPS.match(url) or _SSH.match(url) or _SCP.match(url)
    if match is None:
        if re.match(r"^https://[^/@\s]*:[^/@\s]*@", url) or re.match(r"^https://[^/\s]+@", url):
            return [
                Problem(
                    where,
                    "the URL holds credentials (user or token before '@'); it would be committed to "
                    "every config and root",
                    "pass the URL without them and give Argo CD a repository credential instead",
                )
            ]
        what = f"{url!r} is not a git URL Argo CD can clone (https://, ssh:// or git@host:path)"
        return [Problem(where, what, URL_FIX)]
    host = match.group("host").lower()
    if not _HOST.match(host):
        return [Problem(where, f"{host!r} in {url!r} is not a host name", URL_FIX)]
    if ":" in (match.groupdict().get("user") or ""):
        return [Problem(where, "the URL holds a password", "pass it without one (ssh://git@HOST/…)")]
    return []


def branch_problems(branch: str) -> list[Problem]:
    bad = (
        not _BRANCH.match(branch)
        or ".." in branch
        or branch.endswith((".lock", "."))
        or any(part.startswith(".") for part in branch.split("/"))
    )
    if not bad:
        return []
    return [
        Problem(
            _at("--branch"),
            f"{branch!r} is not a branch name Argo CD can track",
            "pass a plain branch name such as main or release/v1 (letters, digits, '.', '_', '-', '/')",
        )
    ]


def project_problem(env: str, value: str) -> str:
    """Why ``value`` is not a GCP project ID ("" when it is)."""
    if len(value) < 6 or len(value) > 30:
        return f"{len(value)} characters; a GCP project ID has 6 to 30"
    if not value[0].isascii() or not value[0].islower() or not value[0].isalpha():
        return "a GCP project ID starts with a lowercase letter"
    if value.endswith("-"):
        return "a GCP project ID cannot end with a hyphen"
    if not _PROJECT.match(value):
        return "a GCP project ID holds only lowercase letters, digits and hyphens"
    return ""


def domain_problem(env: str, value: str) -> str:
    """Why ``value`` is not a DNS name the env's endpoints can live under ("" when it is)."""
    if "://" in value or "/" in value:
        return "a domain is a DNS name, not a URL (no scheme, no path)"
    if value.endswith("."):
        return "write the domain without its trailing dot"
    if value != value.lower():
        return f"DNS names here are lowercase: write {value.lower()!r}"
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2:
        return "a DNS name has at least two labels (e.g. llm.example.com) and at most 253 characters"
    if not all(_LABEL.match(label) for label in labels):
        return "each label is 1 to 63 of a-z, 0-9 and '-', and does not start or end with '-'"
    if not re.match(r"^[a-z]{2,}$", labels[-1]):
        return f"the top-level label {labels[-1]!r} is not a TLD (letters only, at least two)"
    return ""


def registry_problem(env: str, value: str) -> str:
    if "://" in value:
        return "a registry is HOST/PATH, without a scheme"
    if not _REGISTRY.match(value):
        return "not an image repository path HOST/PATH (lowercase: REGION-docker.pkg.dev/PROJECT/REPO)"
    return ""


_CHECKS = {
    "--project": (project_problem, "--project ENV=ID, e.g. --project dev=acme-llm-dev"),
    "--domain": (domain_problem, "--domain ENV=DNS-NAME, e.g. --domain dev=dev.llm.acme.com"),
    "--registry": (
        registry_problem,
        "--registry ENV=HOST/PATH, e.g. --registry dev=europe-west4-docker.pkg.dev/acme-llm-dev/modelcars",
    ),
}


def _pairs(option: str, given: Iterable[str], envs: Sequence[str], problems: list[Problem]) -> dict[str, str]:
    check, example = _CHECKS[option]
    known = ", ".join(envs) or "none"
    found: dict[str, str] = {}
    for item in given:
        env, sep, value = item.partition("=")
        env, value = env.strip(), value.strip()
        if not sep or not env or not value:
            problems.append(Problem(_at(option), f"{item!r} is not ENV=VALUE", f"pass {example}"))
        elif env not in envs:
            problems.append(
                Problem(
                    _at(option),
                    f"{env!r} is not an environment (known: {known})",
                    f"name one of {known} (environments/<env>/config.yaml)",
                )
            )
        elif env in found and found[env] != value:
            problems.append(
                Problem(_at(option), f"{env} is given twice ({found[env]!r} and {value!r})", "pass it once")
            )
        elif why := check(env, value):
            problems.append(Problem(_at(option), f"{env}={value}: {why}", f"pass {example}"))
        else:
            found[env] = value
    return found


def parse_request(
    envs: Sequence[str],
    repo_url: str,
    branch: str | None,
    projects: Iterable[str] = (),
    domains: Iterable[str] = (),
    registries: Iterable[str] = (),
) -> ForkRequest:
    """The checked request; a UsageError (exit 2) listing every bad value at once otherwise."""
    problems = repo_url_problems(repo_url.strip())
    if branch is not None:
        problems += branch_problems(branch.strip())
    parsed = {opt: _pairs(opt, given, envs, problems) for opt, given in _named(projects, domains, registries)}
    raise_if(problems, UsageError)
    return ForkRequest(
        repo_url=repo_url.strip(),
        branch=branch.strip() if branch is not None else None,
        projects=parsed["--project"],
        domains=parsed["--domain"],
        registries=parsed["--registry"],
    )


def _named(*given: Iterable[str]) -> list[tuple[str, Iterable[str]]]:
    return list(zip(("--project", "--domain", "--registry"), given, strict=True))
