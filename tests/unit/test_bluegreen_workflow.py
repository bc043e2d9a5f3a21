"""The rendered `research-platform-blue-green` template: its shape, locks, exit handler and metric."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `workflows/` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from workflows import bluegreen, template_modules  # noqa: E402
from workflows.common import RenderConfig  # noqa: E402
from workflows.validation import ArgoSchemas, all_problems  # noqa: E402

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def doc() -> Doc:
    path = REPO_ROOT / "manifests" / "argo" / f"{bluegreen.NAME}.yaml"
    loaded: Doc = yaml.safe_load(path.read_text())
    return loaded


def template(doc: Doc, name: str) -> Doc:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_registered_rendered_and_valid(doc: Doc) -> None:
    assert bluegreen in template_modules()
    assert doc == yaml.safe_load(yaml.safe_dump(bluegreen.build(RenderConfig()).to_dict()))
    assert all_problems([doc], ArgoSchemas()) == []
    kustomization = yaml.safe_load((REPO_ROOT / "manifests" / "argo" / "kustomization.yaml").read_text())
    assert f"{bluegreen.NAME}.yaml" in kustomization["resources"]


def test_main_is_pre_promotion_then_optional_approval_then_promotion(doc: Doc) -> None:
    tasks = {t["name"]: t for t in template(doc, "main")["dag"]["tasks"]}
    assert list(tasks) == ["pre-promotion", "approval", "promotion"]
    assert tasks["approval"]["depends"] == "pre-promotion"
    assert tasks["approval"]["when"] == "{{workflow.parameters.auto-promote}} == false"
    assert tasks["promotion"]["depends"] == "approval"  # approval succeeded or skipped
    assert template(doc, "approval")["suspend"] == {}
    pre = template(doc, "pre-promotion")["container"]["args"]
    post = template(doc, "promotion")["container"]["args"]
    assert pre[:2] == post[:2] == ["bluegreen", "promote"]
    assert flag(pre, "--phases") == "deploy,wait-ready,analyze"
    assert flag(post, "--phases") == "switch,verify,finalize"
    assert flag(pre, "--owner") == flag(post, "--owner") == "{{workflow.name}}"  # one lock owner across steps


def test_locks_and_exit_handler(doc: Doc) -> None:
    spec = doc["spec"]
    assert spec["synchronization"] == {
        "mutexes": [{"name": "research-platform-bluegreen-{{workflow.parameters.service}}"}]
    }
    for name in ("pre-promotion", "promotion", "rollback"):
        step = template(doc, name)
        assert step["synchronization"] == {
            "mutexes": [{"name": "research-platform-{{workflow.parameters.service}}"}]
        }
        assert step["retryStrategy"]["expression"].endswith(
            'lastRetry.exitCode != "2")'
        )  # a crash is retried
    assert spec["onExit"] == "exit-handler"
    [rollback] = template(doc, "exit-handler")["dag"]["tasks"]
    assert rollback["when"] == "{{workflow.status}} != Succeeded"
    args = template(doc, "rollback")["container"]["args"]
    assert args[:2] == ["bluegreen", "rollback"] and "--if-owner" in args


def test_promotions_are_counted_once_by_result(doc: Doc) -> None:
    counted = {
        name: template(doc, name).get("metrics", {}).get("prometheus", [])
        for name in ("pre-promotion", "promotion", "rollback")
    }
    assert counted["pre-promotion"] == []
    names = {m["name"] for ms in counted.values() for m in ms}
    assert names == {"research_platform_promotions_total"}
    results = [(m["when"], m["labels"][1]["value"]) for m in counted["promotion"] + counted["rollback"]]
    assert results == [
        ("{{status}} == Succeeded", "{{outputs.parameters.result}}"),
        ("{{status}} == Succeeded", "{{outputs.parameters.result}}"),
        ("{{status}} != Succeeded", "rollback-failed"),
    ]
    outputs = {p["name"] for p in template(doc, "main")["outputs"]["parameters"]}
    assert outputs == {"phase", "active_version", "previous_version", "rolled_back", "reason", "result"}
