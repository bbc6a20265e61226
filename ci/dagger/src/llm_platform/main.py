"""LLM platform delivery as Dagger functions.

Each function assembles a container from digest-pinned images and runs the same `deliver` CLI
that the tests exercise (no logic lives only here). Checks (`dagger check`) take no required
arguments; functions that write files return a Changeset (`dagger generate`, or `dagger call`);
side-effecting functions are never cached. The promotion functions commit inside the engine and
return a LedgerCommit: the CLI's JSON outcome and the repo (with .git) holding the commit.
"""

# No `from __future__ import annotations` here: the SDK reads a field's Doc from the dataclass field's
# type, which postponed annotations would turn into a plain string (the field would lose its description).
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, cast

import dagger
from dagger import DefaultPath, Doc, Ignore, Name, check, field, function, generate, object_type

from . import gitops, modelcar, promotion, substrate
from . import validate as validation
from .promotion import GIT_SOURCE_IGNORE
from .toolbox import SOURCE_IGNORE, WORKDIR, changes, deliver, toolbox

_F = TypeVar("_F", bound=Callable[..., Any])


class _FunctionWithCache(Protocol):
    """``dagger.function`` called with ``cache=``, as its implementation accepts and the docs document.

    dagger-io 0.21.8's typing overloads of ``function`` omit ``cache`` (dagger/dagger#11572), so mypy
    rejects ``@function(cache=...)`` although the call works; this types that call, nothing else.
    """

    def __call__(self, *, cache: str) -> Callable[[_F], _F]: ...


function_with = cast(_FunctionWithCache, function)

# Arguments the ledger-writing functions (promote, rollback, hold_release, verify_release) share.
GitRepo = Annotated[
    dagger.Directory,
    Doc("The repo with its .git, a clean clone (default: the checkout holding dagger.json)"),
    DefaultPath("/"),
    Ignore(GIT_SOURCE_IGNORE),
]
AuthorName = Annotated[str, Doc("git user.name of the commit (also the ledger entry's actor)")]
AuthorEmail = Annotated[str, Doc("git user.email of the commit")]
BreakGlass = Annotated[str, Doc("Reason to act inside a freeze window (recorded in the ledger)")]
Push = Annotated[bool, Doc("Push the commit to origin (fetch, rebase and retry if it moved)")]
GitToken = Annotated[
    dagger.Secret | None, Doc("Token for an HTTPS origin, handed to git by a credential helper")
]
GitUsername = Annotated[str, Doc("User name that goes with git-token (GitLab: oauth2)")]
RemoteUrl = Annotated[
    str, Doc("HTTPS URL to use as origin in the engine, without credentials (default: the checkout's)")
]
AsJson = Annotated[bool, Doc("Print machine-readable JSON"), Name("json")]


@object_type
class LedgerCommit:
    """What a ledger-writing command did: its JSON outcome, and the repo holding the commit it made."""

    outcome: Annotated[
        str, Doc("The command's JSON outcome (deliver ... --json: gates, changes, commit, branch, pushed)")
    ] = field()
    repo: Annotated[
        dagger.Directory,
        Doc("The repo after the command, .git included: export it and fetch the new commit from it"),
    ] = field()

    if TYPE_CHECKING:
        # The dataclass __init__ the SDK generates. mypy cannot see it: it does not apply the
        # dataclass_transform of `object_type`, an overloaded method of the SDK's module instance.
        def __init__(self, *, outcome: str, repo: dagger.Directory) -> None: ...


@object_type
class Published:
    """What a modelcar publish did: the image's reference, and the files it wrote into the repo."""

    uri: Annotated[str, Doc("The published image: oci://REGISTRY/REPO@sha256:...")] = field()
    changes: Annotated[
        dagger.Changeset,
        Doc("What the publish wrote: the env's release and ledger entry (and the lock): commit them"),
    ] = field()

    if TYPE_CHECKING:
        # The dataclass __init__ the SDK generates (see LedgerCommit).
        def __init__(self, *, uri: str, changes: dagger.Changeset) -> None: ...


async def _landed(ctr: dagger.Container) -> LedgerCommit:
    """The outcome on stdout and the repo of the same exec (read once, never rerun for the repo)."""
    return LedgerCommit(outcome=await ctr.stdout(), repo=ctr.directory(WORKDIR))


@object_type
class LlmPlatform:
    """Modelcars, substrate, layers and promotion of the LLM-inference platform."""

    source: Annotated[
        dagger.Directory,
        Doc("The platform repo (defaults to the repo holding dagger.json)"),
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
    ] = field()

    @function
    def toolbox(self) -> dagger.Container:
        """The toolbox: pinned Python, the root uv.lock installed frozen, the project; the repo at /repo."""
        return toolbox(self.source)

    @function
    @check
    async def config_check(
        self,
        env: Annotated[str, Doc("Check only this environment (default: all)")] = "",
    ) -> str:
        """Check environments/<env>/config.yaml for every environment (or one); fails on any error."""
        args = ["config", "check", "--json"] + (["--env", env] if env else [])
        return await deliver(toolbox(self.source), *args).stdout()

    @function
    async def root(
        self,
        env: Annotated[str, Doc("Environment whose root Applications to render")],
        profile: Annotated[str, Doc("Profile: platform, serving, llm-gateway or full (default: env's)")] = "",
    ) -> str:
        """Render the root Argo CD Applications selecting the profile's layers (YAML)."""
        args = ["root", "--env", env] + (["--profile", profile] if profile else [])
        return await deliver(toolbox(self.source), *args).stdout()

    @function
    @generate
    async def root_write(
        self,
        env: Annotated[str, Doc("Write only this environment's root (default: every environment)")] = "",
        profile: Annotated[
            str, Doc("Profile for that one environment: platform, serving, llm-gateway or full")
        ] = "",
    ) -> dagger.Changeset:
        """Write clusters/<env>/root.yaml (deliver root --write) for every env (or one): the changeset."""
        envs = await gitops.environments(self.source, env)
        return gitops.write_roots(self.source, envs, profile)

    @function
    @generate
    async def layers_render(
        self,
        env: Annotated[str, Doc("Render only this environment's layers (default: every environment)")] = "",
    ) -> dagger.Changeset:
        """Render clusters/<env>/layers/ (deliver layers render --write) for every env (or one)."""
        envs = await gitops.environments(self.source, env)
        return gitops.write_layers(self.source, envs)

    @function
    @check
    async def layers_check(
        self,
        env: Annotated[str, Doc("Check only this environment's layers (default: every environment)")] = "",
    ) -> str:
        """Fail if committed layers drift from their rendering (deliver layers render --check, each env)."""
        envs = await gitops.environments(self.source, env)
        return await gitops.layers(self.source, envs, "--check").stdout()

    @function
    def schemas(
        self,
        env: Annotated[
            str, Doc("Build for this environment's Kubernetes minor only (default: all envs)")
        ] = "",
        sources: Annotated[
            dagger.Directory | None,
            Doc("Hermetic copy of the pinned upstream files (kube-schemas); default: fetch pinned URLs"),
        ] = None,
    ) -> dagger.Directory:
        """The hermetic schema bundle kubeconform validates against (deliver schemas --output)."""
        return validation.bundle(self.source, env, sources)

    @function
    @check
    async def validate(
        self,
        env: Annotated[str, Doc("Validate only this environment (default: all)")] = "",
        schemas: Annotated[
            dagger.Directory | None, Doc("A prebuilt schema bundle (the schemas function's output)")
        ] = None,
        sources: Annotated[
            dagger.Directory | None,
            Doc("Hermetic copy of the pinned upstream files, to build the bundle offline"),
        ] = None,
    ) -> str:
        """Validate every layer: kubeconform -strict (pinned image) + policy checks; fails on any finding."""
        return await validation.run(self.source, env, schemas, sources).stdout()

    @function
    def validate_report(
        self,
        env: Annotated[str, Doc("Validate only this environment (default: all)")] = "",
        schemas: Annotated[
            dagger.Directory | None, Doc("A prebuilt schema bundle (the schemas function's output)")
        ] = None,
        sources: Annotated[
            dagger.Directory | None,
            Doc("Hermetic copy of the pinned upstream files, to build the bundle offline"),
        ] = None,
    ) -> dagger.Directory:
        """report.json and junit.xml (one testcase per resource) of the validation, pass or fail."""
        return validation.report(self.source, env, schemas, sources)

    @function
    @check
    async def substrate_check(
        self,
        env: Annotated[str, Doc("Check only this environment's root (default: all)")] = "",
    ) -> str:
        """Check the OpenTofu roots offline: inputs from config, GCS backend, HCL policy, fmt."""
        return await substrate.check(self.source, env).stdout()

    @function_with(cache="never")
    def tofu_plan(
        self,
        env: Annotated[str, Doc("Environment whose substrate (tofu/envs/ENV) to plan")],
        credentials: Annotated[
            dagger.Secret | None,
            Doc("GCP credentials JSON (SA key or ADC) for providers and state; not with --offline"),
        ] = None,
        destroy: Annotated[
            bool, Doc("Plan the env's destruction (secrets kept); tofu-apply approves each delete")
        ] = False,
        destroy_secrets: Annotated[
            bool, Doc("With --destroy: destroy the Secret Manager secrets too")
        ] = False,
        offline: Annotated[
            bool, Doc("Plan against an empty local state: no credentials, no refresh (never applicable)")
        ] = False,
    ) -> dagger.Directory:
        """Plan the GKE substrate: policy, fmt, init, validate-by-plan; returns plan.tfplan + plan.json."""
        return substrate.plan(
            self.source, env, credentials, destroy=destroy, destroy_secrets=destroy_secrets, offline=offline
        )

    @function_with(cache="never")
    async def tofu_apply(
        self,
        env: Annotated[str, Doc("Environment to apply (must match the plan's)")],
        plan: Annotated[dagger.Directory, Doc("The directory tofu-plan returned (plan.tfplan, plan.json)")],
        credentials: Annotated[
            dagger.Secret, Doc("GCP credentials JSON (service account key or ADC) for providers and state")
        ],
        approve_delete: Annotated[
            list[str] | None, Doc("Resource addresses the plan may delete or replace (each one explicitly)")
        ] = None,
        approve_all_deletes: Annotated[
            bool, Doc("For a destroy plan only: approve every address it deletes (the list is printed first)")
        ] = False,
    ) -> str:
        """Apply a saved plan from tofu-plan (never without one); deletes/replaces need approval."""
        ctr = substrate.apply(
            self.source,
            env,
            plan,
            credentials,
            list(approve_delete or []),
            approve_all_deletes=approve_all_deletes,
        )
        return await ctr.stdout()

    @function
    def modelcar_build(
        self,
        name: Annotated[str, Doc("Modelcar spec name (modelcars/NAME.yaml)")],
        hf_token: Annotated[
            dagger.Secret | None, Doc("Hugging Face token for gated/private repos (e.g. env://HF_TOKEN)")
        ] = None,
    ) -> dagger.Directory:
        """Build a modelcar into an OCI image layout (weights downloaded inside the engine, cached)."""
        return modelcar.build(self.source, name, hf_token)

    @function
    @generate
    def modelcar_lock(
        self,
        name: Annotated[str, Doc("Modelcar spec name (modelcars/NAME.yaml)")],
        hf_token: Annotated[
            dagger.Secret | None, Doc("Hugging Face token for gated/private repos (e.g. env://HF_TOKEN)")
        ] = None,
    ) -> dagger.Changeset:
        """Build a modelcar (deliver modelcar build) and return its refreshed modelcars/NAME.lock.yaml."""
        return modelcar.lock(self.source, name, hf_token)

    @function_with(cache="never")
    async def modelcar_publish(
        self,
        name: Annotated[str, Doc("Modelcar spec name (modelcars/NAME.yaml)")],
        env: Annotated[str, Doc("Environment whose registry receives the image")],
        author_name: Annotated[str, Doc("Who publishes: the ledger entry's actor (git user.name)")],
        author_email: Annotated[str, Doc("git user.email that goes with author-name")],
        hf_token: Annotated[
            dagger.Secret | None, Doc("Hugging Face token for gated/private repos (e.g. env://HF_TOKEN)")
        ] = None,
        username: Annotated[
            str, Doc("Registry user (GAR: oauth2accesstoken); empty = docker config / anonymous")
        ] = "",
        password: Annotated[dagger.Secret | None, Doc("Registry password or access token")] = None,
    ) -> Published:
        """Build a modelcar, push it to the env's registry and record it in the env's release and ledger."""
        ctr = modelcar.publish(
            self.source,
            name,
            env,
            hf_token,
            username,
            password,
            author_name=author_name,
            author_email=author_email,
        )
        out = await ctr.stdout()  # the same exec the changes are read from: it runs once
        return Published(uri=str(json.loads(out)["uri"]), changes=changes(self.source, ctr))

    @function_with(cache="never")
    async def promote(
        self,
        to: Annotated[str, Doc("The environment to promote into (its upstream's release moves in)")],
        author_name: AuthorName,
        author_email: AuthorEmail,
        repo: GitRepo,
        only: Annotated[
            list[str] | None, Doc("Promote only these artifacts (default: the whole release)")
        ] = None,
        approved_by: Annotated[
            str, Doc("The approver where the env requires one (without: a review branch)")
        ] = "",
        break_glass: BreakGlass = "",
        dry_run: Annotated[
            bool, Doc("Print every gate's decision and what would move; change nothing")
        ] = False,
        push: Push = False,
        username: Annotated[
            str, Doc("Registry user for the digest-preserving copy (GAR: oauth2accesstoken)")
        ] = "",
        password: Annotated[
            dagger.Secret | None, Doc("Registry password or access token (goes with username)")
        ] = None,
        git_token: GitToken = None,
        git_username: GitUsername = "x-access-token",
        remote_url: RemoteUrl = "",
    ) -> LedgerCommit:
        """Promote the upstream env's release into TO: gates, copy by digest, one commit (--push: pushed)."""
        ctr = promotion.git_toolbox(
            repo,
            author_name=author_name,
            author_email=author_email,
            git_token=git_token,
            git_username=git_username,
            remote_url=remote_url,
        )
        args = promotion.promote_args(to, list(only or []), approved_by, break_glass, dry_run, push, username)
        return await _landed(promotion.run(ctr, args, password))

    @function_with(cache="never")
    async def rollback(
        self,
        env: Annotated[str, Doc("Environment to roll back (it is put on hold)")],
        author_name: AuthorName,
        author_email: AuthorEmail,
        repo: GitRepo,
        to: Annotated[
            str, Doc("Bring back the release right after this ledger entry (default: the previous one)")
        ] = "",
        break_glass: BreakGlass = "",
        push: Push = False,
        git_token: GitToken = None,
        git_username: GitUsername = "x-access-token",
        remote_url: RemoteUrl = "",
    ) -> LedgerCommit:
        """Bring back ENV's previous release (or a named one) and put ENV on hold: one commit."""
        ctr = promotion.git_toolbox(
            repo,
            author_name=author_name,
            author_email=author_email,
            git_token=git_token,
            git_username=git_username,
            remote_url=remote_url,
        )
        return await _landed(promotion.run(ctr, promotion.rollback_args(env, to, break_glass, push)))

    @function_with(cache="never")
    async def hold_release(
        self,
        env: Annotated[str, Doc("Environment whose hold to lift")],
        author_name: AuthorName,
        author_email: AuthorEmail,
        repo: GitRepo,
        push: Push = False,
        git_token: GitToken = None,
        git_username: GitUsername = "x-access-token",
        remote_url: RemoteUrl = "",
    ) -> LedgerCommit:
        """Lift the hold on ENV (a ledger entry, one commit), so promotions into it run again."""
        ctr = promotion.git_toolbox(
            repo,
            author_name=author_name,
            author_email=author_email,
            git_token=git_token,
            git_username=git_username,
            remote_url=remote_url,
        )
        return await _landed(promotion.run(ctr, promotion.hold_release_args(env, push)))

    @function_with(cache="never")
    async def verify_release(
        self,
        env: Annotated[str, Doc("Environment whose current release was verified")],
        evidence: Annotated[str, Doc("What verified it: a CI run URL or a short note")],
        author_name: AuthorName,
        author_email: AuthorEmail,
        repo: GitRepo,
        push: Push = False,
        git_token: GitToken = None,
        git_username: GitUsername = "x-access-token",
        remote_url: RemoteUrl = "",
    ) -> LedgerCommit:
        """Record that ENV's release was verified (what requireVerified downstream waits for): one commit."""
        ctr = promotion.git_toolbox(
            repo,
            author_name=author_name,
            author_email=author_email,
            git_token=git_token,
            git_username=git_username,
            remote_url=remote_url,
        )
        return await _landed(promotion.run(ctr, promotion.verify_release_args(env, evidence, push)))

    @function_with(cache="never")
    async def status(self, as_json: AsJson = False) -> str:
        """Environments x artifacts: what runs, since when, what upstream has, what blocks a promotion."""
        return await promotion.status(self.source, as_json).stdout()

    @function
    async def history(
        self,
        env: Annotated[str, Doc("Environment whose ledger to show")],
        as_json: AsJson = False,
    ) -> str:
        """ENV's ledger, oldest first: every publish, promotion, rollback, verification and hold."""
        return await promotion.history(self.source, env, as_json).stdout()
