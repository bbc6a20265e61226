"""``deliver promote``, ``import-images``, ``rollback``, ``hold release``, ``verify-release``, ``status``
and ``history``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from delivery.config import load_env
from delivery.core import console
from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.core.errors import UsageError
from delivery.core.secrets import REGISTRY_PASSWORD_VAR, registry_password
from delivery.oci.auth import Credentials
from delivery.promotion import report
from delivery.promotion.promote import Outcome, import_images, promote, record_only, rollback
from delivery.promotion.steps import CredentialsFor
from delivery.release.ledger import parse_time

NOW_ENV = "DELIVER_NOW"  # tests and replays fix the clock; never needed otherwise

push_option = click.option(
    "--push", "do_push", is_flag=True, help="Push the commit to the git remote (origin)."
)
break_glass_option = click.option(
    "--break-glass",
    default="",
    metavar="REASON",
    help="Promote inside a freeze window (recorded in the ledger).",
)
username_option = click.option("--username", default=None, help="Registry user (GAR: oauth2accesstoken).")
password_file_option = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File holding the target registry's password or token (else ${REGISTRY_PASSWORD_VAR}).",
)


def _now() -> datetime:
    fixed = os.environ.get(NOW_ENV)
    if not fixed:
        return datetime.now(UTC)
    try:
        value = parse_time(fixed)  # the ledger's own timestamp reader: ISO, with a timezone
    except ValueError as err:
        raise UsageError(
            f"${NOW_ENV}={fixed!r} is not a timestamp with a timezone ({err})",
            fix=f"e.g. 2026-12-02T10:00:00Z, or unset {NOW_ENV}",
        ) from None
    console.info(f"warning: the clock is set by ${NOW_ENV} to {fixed} (for tests and replays)")
    return value


def _credentials(username: str | None, password_file: Path | None, target_host: str) -> CredentialsFor:
    """Registry credentials per host: ``--username``/password only for the target env's registry.

    The upstream registry (and any other) gets what docker config, Google ADC or anonymous access
    give it: a token for the target is never sent to another host.
    """
    from delivery.oci.auth import resolve_credentials

    password, origin = registry_password(username, password_file, "promote")

    def credentials_for(host: str) -> Credentials:
        if host == target_host:
            return resolve_credentials(host, username=username, password=password, password_origin=origin)
        return resolve_credentials(host)

    return credentials_for


def _print_outcome(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        console.print_json(outcome.as_dict())
        return
    for d in outcome.decisions:
        mark = "pass" if d.passed else ("review" if d.route else "REFUSED")
        extra = f" (break-glass: {d.override})" if d.override else ""
        click.echo(f"  {mark:8} {d.gate:9} {d.reason}{extra}")
    for name, change in sorted(outcome.changes.items()):
        click.echo(f"  {name}: {change.old or '(none)'} -> {change.new}")
    for c in outcome.copies:
        click.echo(
            f"  copied {c.target}: {c.blobs_copied} blob(s) copied, {c.blobs_mounted} mounted, "
            f"{c.blobs_skipped} already there, {c.bytes_sent} bytes sent"
        )
    if outcome.dry_run:
        click.echo("dry run: nothing copied, written or committed")
    elif outcome.commit is None and outcome.kind == "import":
        click.echo(f"{outcome.env}'s registry holds every pinned image at its digest already: nothing to do")
    elif outcome.commit is None:
        click.echo(f"{outcome.env} already runs this release: nothing to do")
    elif outcome.review_branch:
        click.echo(
            f"needs approval: committed on branch {outcome.review_branch} ({outcome.commit.commit[:12]})"
            + (", pushed" if outcome.pushed else "; push it with --push")
            + f"; land it with: deliver promote --to {outcome.env} --approved-by NAME"
        )
    else:
        click.echo(
            f"{outcome.kind} committed on {outcome.commit.branch}: {outcome.commit.commit[:12]} "
            f"(ledger {outcome.ledger_id})" + (", pushed" if outcome.pushed else "")
        )


@click.command("promote")
@click.option("--to", "to", required=True, metavar="ENV", help="The environment to promote into.")
@click.option("--only", multiple=True, metavar="ARTIFACT", help="Promote only this artifact (repeatable).")
@click.option(
    "--approved-by", default="", metavar="NAME", help="The approver (needed where approvalRequired)."
)
@break_glass_option
@click.option(
    "--dry-run", is_flag=True, help="Print every gate's decision and what would move; change nothing."
)
@push_option
@username_option
@password_file_option
@json_option
@click.pass_context
def promote_cmd(
    ctx: click.Context,
    to: str,
    only: tuple[str, ...],
    approved_by: str,
    break_glass: str,
    dry_run: bool,
    do_push: bool,
    username: str | None,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Promote the upstream environment's release into ENV: resolve, gate, copy, update, validate, commit."""
    repo = resolved_repo(ctx)
    target_host = load_env(repo, to).registry.partition("/")[0]
    credentials_for = _credentials(username, password_file, target_host)
    with console.ProgressReporter(quiet=as_json) as reporter:
        outcome = promote(
            repo,
            to,
            now=_now(),
            credentials_for=credentials_for,
            only=only,
            approved_by=approved_by,
            break_glass=break_glass,
            dry_run=dry_run,
            do_push=do_push,
            reporter=reporter,
        )
    _print_outcome(outcome, as_json)
    if dry_run and not outcome.ok:
        refused = [d.gate for d in outcome.decisions if not d.passed]
        fail_reported(
            f"promotion into {to} would not land now (gates: {', '.join(refused)})",
            fix="see each gate's reason above; deliver status shows what blocks every environment",
        )


@click.command("import-images")
@env_option()
@click.option("--only", multiple=True, metavar="IMAGE", help="Import only this pinned image (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print what would be copied; change nothing.")
@push_option
@username_option
@password_file_option
@json_option
@click.pass_context
def import_images_cmd(
    ctx: click.Context,
    env: str,
    only: tuple[str, ...],
    dry_run: bool,
    do_push: bool,
    username: str | None,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Copy the images of clusters/pins.yaml into entry env ENV's registry by digest; one commit.

    ENV then pulls them from its own registry (GKE image streaming serves Artifact Registry images
    only); environments promoted from it copy them on from there."""
    repo = resolved_repo(ctx)
    target_host = load_env(repo, env).registry.partition("/")[0]
    credentials_for = _credentials(username, password_file, target_host)
    with console.ProgressReporter(quiet=as_json) as reporter:
        outcome = import_images(
            repo,
            env,
            now=_now(),
            credentials_for=credentials_for,
            only=only,
            dry_run=dry_run,
            do_push=do_push,
            reporter=reporter,
        )
    _print_outcome(outcome, as_json)


def _record(
    ctx: click.Context, env: str, kind: str, note: str, do_push: bool, as_json: bool, done: str
) -> None:
    """A ledger-only command (verify, release-hold): one commit, then its result."""
    entry, landed, pushed = record_only(resolved_repo(ctx), env, kind, now=_now(), note=note, do_push=do_push)
    if as_json:
        console.print_json(
            {"ok": True, "env": env, "ledgerId": entry.id, "commit": landed.commit, "pushed": pushed}
        )
    else:
        click.echo(f"{done} (ledger {entry.id})" + (", pushed" if pushed else ""))


@click.command("rollback")
@env_option()
@click.option(
    "--to", "to", default="", metavar="LEDGER_ID", help="Bring back the release right after this entry."
)
@break_glass_option
@push_option
@json_option
@click.pass_context
def rollback_cmd(
    ctx: click.Context, env: str, to: str, break_glass: str, do_push: bool, as_json: bool
) -> None:
    """Bring back ENV's previous release (or a named one) and put ENV on hold."""
    outcome = rollback(resolved_repo(ctx), env, now=_now(), to=to, break_glass=break_glass, do_push=do_push)
    _print_outcome(outcome, as_json)
    if not as_json:
        click.echo(
            f"{env} is on hold: deliver promote --to {env} refuses until: deliver hold release --env {env}"
        )


@click.group("hold")
def hold_group() -> None:
    """Holds on an environment (a rollback puts one; promotions into it are refused meanwhile)."""


@hold_group.command("release")
@env_option()
@push_option
@json_option
@click.pass_context
def hold_release_cmd(ctx: click.Context, env: str, do_push: bool, as_json: bool) -> None:
    """Lift the hold on ENV (recorded in its ledger), so promotions into it run again."""
    _record(ctx, env, "release-hold", "hold released", do_push, as_json, f"hold on {env} released")


@click.command("verify-release")
@env_option()
@click.option(
    "--evidence", required=True, metavar="URL_OR_TEXT", help="What verified it (a CI run URL, a note)."
)
@push_option
@json_option
@click.pass_context
def verify_release_cmd(ctx: click.Context, env: str, evidence: str, do_push: bool, as_json: bool) -> None:
    """Record that ENV's current release was verified (what requireVerified downstream waits for)."""
    if not evidence.strip():
        raise UsageError("--evidence is empty", fix="pass a CI run URL or a short note")
    _record(ctx, env, "verify", evidence.strip(), do_push, as_json, f"{env} verified")


@click.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Environments × artifacts: what runs, since when, what upstream has, and what blocks a promotion."""
    cells = report.status(resolved_repo(ctx), _now())
    if as_json:
        console.print_json({"ok": True, "cells": [c.as_dict() for c in cells]})
    else:
        click.echo(report.status_table(cells), nl=False)


@click.command("history")
@env_option()
@json_option
@click.pass_context
def history_cmd(ctx: click.Context, env: str, as_json: bool) -> None:
    """ENV's ledger, oldest first: every publish, promotion, rollback, verification and hold."""
    entries = report.history(resolved_repo(ctx), env)
    if as_json:
        console.print_json({"ok": True, "env": env, "entries": [e.as_dict() for e in entries]})
    else:
        click.echo(report.history_table(entries), nl=False)
