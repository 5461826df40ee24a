"""Serve's replica actors of one deployment, found by the names Serve gives them
(`SERVE_REPLICA::APP#DEPLOYMENT#ID` in the namespace `serve`); no public API lists them."""

from __future__ import annotations

import ray


def replica_names(app: str, deployment: str) -> list[tuple[str, str]]:
    """(actor name, namespace) of each live replica, sorted."""
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    return sorted((a["name"], a["namespace"]) for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith(prefix))
