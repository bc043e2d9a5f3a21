"""Readiness from a Deployment's ReplicaSets (k8s_model.replicaset_status, rollout_status): pure."""

from __future__ import annotations

from typing import Any

import pytest
from rpops.platform.kubernetes import model as m


def deployment(replicas: int = 2, revision: str | None = "3", uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "rp-v1", "generation": 1}
    if revision:
        meta["annotations"] = {m.REVISION_ANNOTATION: revision}
    if uid:
        meta["uid"] = uid
    status = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas}
    status |= {"readyReplicas": replicas, "availableReplicas": replicas}
    return {"metadata": meta, "spec": {"replicas": replicas}, "status": status}


def rs(
    name: str,
    revision: str,
    replicas: int,
    ready: int | None = None,
    owner: str = "rp-v1",
    uid: str | None = None,
    running: int | None = None,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "controller": True}
    if uid:
        ref["uid"] = uid
    ready = replicas if ready is None else ready
    return {
        "metadata": {
            "name": name,
            "annotations": {m.REVISION_ANNOTATION: revision},
            "ownerReferences": [ref],
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas if running is None else running,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


@pytest.mark.parametrize(
    ("dep", "sets", "complete", "detail"),
    [
        (deployment(), [rs("rp-v1-a", "3", 2)], True, "ReplicaSet rp-v1-a (revision 3): 2/2 ready"),
        (
            deployment(),
            [rs("rp-v1-a", "3", 2, ready=1)],
            False,
            "rp-v1-a (revision 3): 1/2 ready, 1/2 available",
        ),
        (deployment(), [], False, "no ReplicaSet of revision 3 yet"),
        (
            deployment(revision=None),
            [rs("rp-v1-a", "3", 2)],
            False,
            "has not given the Deployment a revision",
        ),
        (deployment(), [rs("rp-v1-a", "2", 2)], False, "no ReplicaSet of revision 3 yet"),
        (
            deployment(),
            [rs("rp-v1-b", "3", 2), rs("rp-v1-a", "2", 1)],
            False,
            "old ReplicaSet rp-v1-a (revision 2) still has 1 replicas",
        ),
        (  # scaled down, its pod not gone yet
            deployment(),
            [rs("rp-v1-b", "3", 2), rs("rp-v1-a", "2", 0, running=1)],
            False,
            "old ReplicaSet rp-v1-a (revision 2) still has 1",
        ),
        (deployment(), [rs("rp-v1-b", "3", 2), rs("rp-v1-a", "2", 0)], True, "2/2 ready"),
        # Another Deployment's ReplicaSet (same labels, same revision number) does not count.
        (deployment(), [rs("rp-v2-a", "3", 2, owner="rp-v2")], False, "no ReplicaSet of revision 3 yet"),
        (deployment(), [rs("rp-v1-a", "3", 2), rs("x", "1", 4, owner="rp-v2")], True, "2/2 ready"),
        # A namesake's leftovers (the Deployment was recreated: another uid) do not count either.
        (deployment(uid="new"), [rs("rp-v1-a", "3", 2, uid="old")], False, "no ReplicaSet of revision 3"),
        (deployment(uid="new"), [rs("rp-v1-a", "3", 2, uid="new")], True, "2/2 ready"),
        (deployment(replicas=0), [], True, "0 desired"),
        (deployment(replicas=0), [rs("rp-v1-a", "2", 1)], False, "rp-v1-a (revision 2) still has 1"),
    ],
)
def test_replicaset_status(
    dep: dict[str, Any], sets: list[dict[str, Any]], complete: bool, detail: str
) -> None:
    done, why = m.replicaset_status(dep, sets)
    assert (done, detail in why) == (complete, True), why


def test_rollout_status_checks_the_deployment_first_then_its_replicasets() -> None:
    dep = deployment()
    dep["status"]["updatedReplicas"] = 1
    assert m.rollout_status(dep, [rs("rp-v1-a", "3", 2)]) == (False, "1/2 replicas updated")
    assert m.rollout_status(deployment(), [rs("rp-v1-a", "3", 2, ready=0)])[0] is False
    assert m.rollout_status(deployment(), [rs("rp-v1-a", "3", 2)])[0] is True
    assert m.rollout_status(deployment(), None) == (True, "2/2 ready")  # status only, as before
