"""``signoff kube``: manifests that run signoff itself on a Kubernetes cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from signoff._version import __version__
from signoff.cli.console import out
from signoff.deployment.cluster import ClusterSpec, cluster_documents
from signoff.deployment.kube import check_image, default_image, yaml_documents

__all__ = ["kube_app"]

kube_app = typer.Typer(help="Run signoff itself on Kubernetes.", no_args_is_help=True)


@kube_app.command("manifests")
def kube_manifests(
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="signoff image, pinned to a tag or digest "
            f"[default: {default_image(__version__)}].",
        ),
    ] = None,
    replicas: Annotated[
        int, typer.Option("--replicas", min=0, max=1000, help="Worker pods (signoff worker).")
    ] = 2,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=64, help="Runs each worker drives at once.")
    ] = 4,
    grace: Annotated[
        int,
        typer.Option(
            "--grace",
            min=1,
            help="Seconds a stopping worker may take to let its runs settle (your longest task).",
        ),
    ] = 3600,
    name: Annotated[str, typer.Option("--name", help="Prefix of every object's name.")] = "signoff",
    secret: Annotated[
        str,
        typer.Option("--secret", help="Secret holding database-url, secret-key and audit-key."),
    ] = "signoff",  # noqa: S107 - the Secret's name, not a secret
    home_claim: Annotated[
        str,
        typer.Option("--home-claim", help="ReadWriteMany volume claim for the shared home folder."),
    ] = "signoff-home",
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Public URL the e-mailed links use.")
    ] = None,
    artifacts_url: Annotated[
        str | None,
        typer.Option("--artifacts-url", help="Artifact store every pod uses (s3://bucket/prefix)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the migration Job, the server and N workers as YAML (apply the Job first)."""
    spec = ClusterSpec(
        image=check_image(image or default_image(__version__)),
        version=__version__,
        name=name,
        secret=secret,
        workers=replicas,
        worker_threads=threads,
        worker_grace_seconds=grace,
        base_url=base_url,
        artifacts_url=artifacts_url,
        home_claim=home_claim,
    )
    header = (
        f"# signoff {__version__} on Kubernetes: the migration Job, the server, "
        f"{replicas} workers\n"
        f"# the Secret {secret} holds database-url, secret-key and audit-key (never inline)\n"
        "# apply the Job first and wait for it (docs/kubernetes.md), then the rest\n"
    )
    text = yaml_documents(cluster_documents(spec), header)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(Text(f"wrote signoff manifests ({replicas} workers) to {output}"))
