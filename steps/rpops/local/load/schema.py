"""The supported subset of Argo's workflow schema, field by field, and a strict checker.

Every field Argo v4 knows is listed for each object rpops reads, with what `rpops local`
does with it: `OK` (executed), `IGNORE` (accepted; it only matters on a cluster, e.g.
`resources`, `serviceAccountName`) or `REFUSE` (a behaviour rpops cannot reproduce, with
the reason). Anything not listed is an unknown field (usually a typo) and is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK, IGNORE, REFUSE = "ok", "ignore", "refuse"

# A rule is (verdict, type) for OK, (IGNORE, None) or (REFUSE, reason).
# Types: "str", "int", "intstr", "bool", "scalar" (parameter value), "strmap", "any", "items",
# "steps" (list of lists of WorkflowStep), "list:<T>" and "obj:<T>" with T a key of SPEC.
Rule = tuple[str, Any]

_POD_ONLY: Rule = (IGNORE, None)
_NO_VOLUMES = (
    REFUSE,
    "volumes are not mounted locally; pass values as parameters and files under /tmp/outputs",
)

SPEC: dict[str, dict[str, Rule]] = {
    "Document": {
        "apiVersion": (OK, "str"),
        "kind": (OK, "str"),
        "metadata": (OK, "obj:ObjectMeta"),
        "spec": (OK, "any"),  # checked per kind
        "status": (IGNORE, None),
    },
    "ObjectMeta": {
        "name": (OK, "str"),
        "generateName": (OK, "str"),
        "namespace": (OK, "str"),
        "labels": (OK, "strmap"),
        "annotations": (OK, "strmap"),
        **{
            k: _POD_ONLY
            for k in (
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
                "finalizers",
                "ownerReferences",
                "selfLink",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            )
        },
    },
    "WorkflowSpec": {
        "activeDeadlineSeconds": (OK, "intstr"),
        "arguments": (OK, "obj:Arguments"),
        "entrypoint": (OK, "str"),
        "onExit": (OK, "str"),
        "parallelism": (OK, "int"),
        "synchronization": (OK, "obj:Synchronization"),
        "templates": (OK, "list:Template"),
        "workflowTemplateRef": (OK, "obj:WorkflowTemplateRef"),
        "metrics": (OK, "any"),
        **{
            k: _POD_ONLY
            for k in (
                "affinity",
                "archiveLogs",
                "artifactGC",
                "artifactRepositoryRef",
                "automountServiceAccountToken",
                "dnsConfig",
                "dnsPolicy",
                "executor",
                "hostAliases",
                "hostNetwork",
                "imagePullSecrets",
                "nodeSelector",
                "podDisruptionBudget",
                "podGC",
                "podMetadata",
                "podPriorityClassName",
                "podResources",
                "priority",
                "resourceClaims",
                "schedulerName",
                "securityContext",
                "serviceAccountName",
                "tolerations",
                "ttlStrategy",
                "volumeClaimGC",
                "workflowMetadata",
            )
        },
        "executorPlugins": (REFUSE, "executor plugins need a cluster"),
        "hooks": (REFUSE, "lifecycle hooks are not supported locally; use onExit"),
        "podSpecPatch": (REFUSE, "a pod spec patch cannot be applied to a local process"),
        "retryStrategy": (REFUSE, "set retryStrategy on the templates that should retry"),
        "shutdown": (REFUSE, "a shutdown strategy is set by `argo stop`; use `rpops local stop`"),
        "suspend": (REFUSE, "a workflow cannot start suspended locally; use a suspend template"),
        "templateDefaults": (REFUSE, "write the defaults into each template"),
        "volumeClaimTemplates": _NO_VOLUMES,
        "volumes": _NO_VOLUMES,
    },
    "CronWorkflowSpec": {
        "workflowSpec": (OK, "obj:WorkflowSpec"),
        "schedules": (OK, "list:str"),
        "timezone": (OK, "str"),
        "concurrencyPolicy": (OK, "str"),
        "startingDeadlineSeconds": (OK, "int"),
        "suspend": (OK, "bool"),
        "when": (OK, "str"),
        "stopStrategy": (OK, "any"),
        "successfulJobsHistoryLimit": _POD_ONLY,
        "failedJobsHistoryLimit": _POD_ONLY,
        "workflowMetadata": _POD_ONLY,
    },
    "WorkflowTemplateRef": {
        "name": (OK, "str"),
        "clusterScope": (OK, "bool"),  # refused when true (no ClusterWorkflowTemplates locally)
    },
    "Arguments": {
        "parameters": (OK, "list:Parameter"),
        "artifacts": (REFUSE, "input artifacts are not passed locally; pass values as parameters"),
    },
    "Inputs": {
        "parameters": (OK, "list:Parameter"),
        "artifacts": (REFUSE, "input artifacts are not passed locally; pass values as parameters"),
    },
    "Parameter": {
        "name": (OK, "str"),
        "value": (OK, "scalar"),
        "default": (OK, "scalar"),
        "enum": (OK, "list:scalar"),
        "description": (OK, "str"),
        "valueFrom": (REFUSE, "input parameters take a value, a default or an argument locally"),
        "globalName": (REFUSE, "global output parameters are not supported locally"),
    },
    "Outputs": {
        "parameters": (OK, "list:OutputParameter"),
        "artifacts": (OK, "list:OutputArtifact"),
        "result": (REFUSE, "outputs.result is set by the executor, not declared"),
        "exitCode": (REFUSE, "outputs.exitCode is set by the executor, not declared"),
    },
    "OutputParameter": {
        "name": (OK, "str"),
        "valueFrom": (OK, "obj:OutputValueFrom"),
        "description": (OK, "str"),
        "default": (REFUSE, "an output's default belongs in valueFrom.default (Argo ignores it here)"),
        "value": (REFUSE, "an output takes its value from valueFrom"),
        "enum": (REFUSE, "enums apply to inputs"),
        "globalName": (REFUSE, "global output parameters are not supported locally"),
    },
    "OutputValueFrom": {
        "path": (OK, "str"),
        "default": (OK, "scalar"),
        "parameter": (OK, "str"),
        "supplied": (REFUSE, "supplied values (argo resume --parameter) are not supported locally"),
        "expression": (OK, "str"),
        "jsonPath": (REFUSE, "resource templates are not supported locally"),
        "jqFilter": (REFUSE, "resource templates are not supported locally"),
        "configMapKeyRef": (REFUSE, "ConfigMaps are not read locally"),
        "event": (REFUSE, "event values are not supported locally"),
    },
    "OutputArtifact": {
        "name": (OK, "str"),
        "path": (OK, "str"),
        "optional": (OK, "bool"),
        **{
            k: _POD_ONLY
            for k in (
                "archive",
                "archiveLogs",
                "artifactGC",
                "artifactory",
                "azure",
                "gcs",
                "hdfs",
                "http",
                "oss",
                "s3",
                "mode",
                "recurseMode",
                "deleted",
                "git",
                "raw",
                "plugin",
                "subPath",
            )
        },
        "from": (REFUSE, "artifacts are copied only from a container's own files locally"),
        "fromExpression": (REFUSE, "artifacts are copied only from a container's own files locally"),
        "globalName": (REFUSE, "global output artifacts are not supported locally"),
    },
    "Template": {
        "name": (OK, "str"),
        "inputs": (OK, "obj:Inputs"),
        "outputs": (OK, "obj:Outputs"),
        "container": (OK, "obj:Container"),
        "script": (OK, "obj:Script"),
        "steps": (OK, "steps"),
        "dag": (OK, "obj:DAG"),
        "suspend": (OK, "obj:Suspend"),
        "activeDeadlineSeconds": (OK, "intstr"),
        "timeout": (OK, "str"),
        "parallelism": (OK, "int"),
        "retryStrategy": (OK, "obj:RetryStrategy"),
        "synchronization": (OK, "obj:Synchronization"),
        "metrics": (OK, "any"),
        **{
            k: _POD_ONLY
            for k in (
                "affinity",
                "annotations",
                "archiveLocation",
                "automountServiceAccountToken",
                "executor",
                "hostAliases",
                "metadata",
                "nodeSelector",
                "pendingTimeout",
                "podResources",
                "priorityClassName",
                "resourceClaims",
                "schedulerName",
                "securityContext",
                "serviceAccountName",
                "tolerations",
            )
        },
        "containerSet": (REFUSE, "container sets are not supported locally; use steps"),
        "daemon": (REFUSE, "daemoned steps are not supported locally"),
        "data": (REFUSE, "data templates are not supported locally"),
        "failFast": (OK, "bool"),
        "http": (REFUSE, "HTTP templates are not supported locally; call the URL from a container step"),
        "initContainers": (REFUSE, "init containers are not supported locally"),
        "memoize": (REFUSE, "memoization is not supported locally"),
        "plugin": (REFUSE, "executor plugins need a cluster"),
        "podSpecPatch": (REFUSE, "a pod spec patch cannot be applied to a local process"),
        "resource": (REFUSE, "resource templates need a Kubernetes API; use a container step"),
        "sidecars": (REFUSE, "sidecars are not supported locally"),
        "volumes": _NO_VOLUMES,
    },
    "Container": {
        "command": (OK, "list:str"),
        "args": (OK, "list:str"),
        "env": (OK, "list:EnvVar"),
        "workingDir": (OK, "str"),
        **{
            k: _POD_ONLY
            for k in (
                "image",
                "imagePullPolicy",
                "livenessProbe",
                "name",
                "ports",
                "readinessProbe",
                "resizePolicy",
                "resources",
                "restartPolicy",
                "restartPolicyRules",
                "securityContext",
                "startupProbe",
                "terminationMessagePath",
                "terminationMessagePolicy",
            )
        },
        "envFrom": (REFUSE, "envFrom is not supported locally; list each variable under env"),
        "lifecycle": (REFUSE, "container lifecycle hooks are not supported locally"),
        "stdin": (REFUSE, "steps get no stdin locally"),
        "stdinOnce": (REFUSE, "steps get no stdin locally"),
        "tty": (REFUSE, "steps get no terminal locally"),
        "volumeDevices": _NO_VOLUMES,
        "volumeMounts": _NO_VOLUMES,
    },
    "EnvVar": {"name": (OK, "str"), "value": (OK, "str"), "valueFrom": (OK, "obj:EnvVarSource")},
    "EnvVarSource": {
        "secretKeyRef": (OK, "obj:SecretKeySelector"),
        "configMapKeyRef": (REFUSE, "ConfigMaps are not read locally; use value or secretKeyRef"),
        "fieldRef": (REFUSE, "pod fields do not exist locally; use value"),
        "fileKeyRef": (REFUSE, "file key references are not supported locally"),
        "resourceFieldRef": (REFUSE, "resource fields do not exist locally; use value"),
    },
    "SecretKeySelector": {"name": (OK, "str"), "key": (OK, "str"), "optional": (OK, "bool")},
    "Suspend": {"duration": (OK, "intstr")},
    "DAG": {"tasks": (OK, "list:DAGTask"), "target": (OK, "str"), "failFast": (OK, "bool")},
    "WorkflowStep": {
        "name": (OK, "str"),
        "template": (OK, "str"),
        "templateRef": (OK, "obj:TemplateRef"),
        "arguments": (OK, "obj:Arguments"),
        "when": (OK, "str"),
        "withItems": (OK, "items"),
        "withParam": (OK, "str"),
        "withSequence": (OK, "obj:Sequence"),
        "continueOn": (OK, "obj:ContinueOn"),
        "hooks": (OK, "hooks"),
        "inline": (REFUSE, "inline templates are not supported locally; name a template"),
        "onExit": (OK, "str"),
    },
    "LifecycleHook": {
        "template": (OK, "str"),
        "templateRef": (OK, "obj:TemplateRef"),
        "arguments": (OK, "obj:Arguments"),
        "expression": (REFUSE, "conditional exit hooks are not supported locally"),
    },
    "TemplateRef": {"name": (OK, "str"), "template": (OK, "str"), "clusterScope": (OK, "bool")},
    "ContinueOn": {"failed": (OK, "bool"), "error": (OK, "bool")},
    "Sequence": {
        "count": (OK, "intstr"),
        "start": (OK, "intstr"),
        "end": (OK, "intstr"),
        "format": (OK, "str"),
    },
    "RetryStrategy": {
        "limit": (OK, "intstr"),
        "retryPolicy": (OK, "str"),
        "backoff": (OK, "obj:Backoff"),
        "expression": (OK, "str"),
        "affinity": _POD_ONLY,
    },
    "Backoff": {
        "duration": (OK, "intstr"),
        "factor": (OK, "intstr"),
        "maxDuration": (OK, "intstr"),
        "cap": (OK, "intstr"),
    },
    "Synchronization": {
        "mutexes": (OK, "list:Mutex"),
        "semaphores": (REFUSE, "semaphores need a ConfigMap; use mutexes"),
        "mutex": (REFUSE, "Argo v4 uses the plural list: synchronization.mutexes"),
        "semaphore": (REFUSE, "Argo v4 uses the plural list: synchronization.semaphores"),
    },
    "Mutex": {
        "name": (OK, "str"),
        "namespace": (OK, "str"),
        "database": (REFUSE, "database-backed locks are not supported locally"),
    },
}
SPEC["Script"] = {**SPEC["Container"], "source": (OK, "str")}
SPEC["DAGTask"] = {
    **SPEC["WorkflowStep"],
    "dependencies": (OK, "list:str"),
    "depends": (OK, "str"),
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "Parameter": ("name",),
    "OutputParameter": ("name",),
    "OutputArtifact": ("name", "path"),
    "Template": ("name",),
    "EnvVar": ("name",),
    "SecretKeySelector": ("name", "key"),
    "DAG": ("tasks",),
    "WorkflowStep": ("name",),
    "DAGTask": ("name",),
    "TemplateRef": ("name", "template"),
    "Mutex": ("name",),
    "WorkflowTemplateRef": ("name",),
    "CronWorkflowSpec": ("workflowSpec",),
}


@dataclass(frozen=True)
class Problem:
    """One refusal: where it is and why."""

    path: str
    message: str
    template: str | None = None

    def render(self) -> str:
        where = (
            f"template '{self.template}', field '{self.path}'" if self.template else f"field '{self.path}'"
        )
        return f"{where}: {self.message}"


def check(value: Any, kind: str, path: str = "", template: str | None = None) -> list[Problem]:
    """Check `value` against type `kind`; return every problem found (empty when acceptable)."""
    problems: list[Problem] = []
    _check(value, kind, path, template, problems)
    return problems


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(value: Any, kind: str, path: str, template: str | None, out: list[Problem]) -> None:
    def bad(msg: str) -> None:
        out.append(Problem(path or "(document)", msg, template))

    if kind == "any":
        return
    if kind == "str":
        if not isinstance(value, str):
            bad(f"must be a string, got {type(value).__name__} {value!r} (quote it in YAML)")
        return
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad(f"must be an integer, got {value!r}")
        return
    if kind == "intstr":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            bad(f"must be an integer or a string, got {value!r}")
        return
    if kind == "bool":
        if not isinstance(value, bool):
            bad(f"must be true or false, got {value!r}")
        return
    if kind == "scalar":
        if value is not None and not isinstance(value, (str, int, float, bool)):
            bad(f"must be a string or number, got {type(value).__name__} (quote JSON values as a string)")
        return
    if kind == "strmap":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            bad("must be a map of strings")
        return
    if kind == "hooks":
        if not isinstance(value, dict):
            bad("must be a map of hook name to hook")
            return
        for key, hook in value.items():
            if key != "exit":
                out.append(
                    Problem(
                        _join(path, str(key)),
                        "not supported by rpops local: only the exit hook runs locally "
                        "(running/expression hooks need Argo's controller)",
                        template,
                    )
                )
                continue
            _check(hook, "obj:LifecycleHook", _join(path, key), template, out)
        return
    if kind == "items":
        if not isinstance(value, list):
            bad("must be a list")
        return
    if kind == "steps":
        if not isinstance(value, list) or not all(isinstance(group, list) for group in value):
            bad("must be a list of step groups (each a list of steps)")
            return
        for i, group in enumerate(value):
            for j, step in enumerate(group):
                _check(step, "obj:WorkflowStep", f"{path}[{i}][{j}]", template, out)
        return
    if kind.startswith("list:"):
        if not isinstance(value, list):
            bad("must be a list")
            return
        inner = kind[5:]
        for i, item in enumerate(value):
            tmpl = template
            if inner == "Template" and isinstance(item, dict) and isinstance(item.get("name"), str):
                tmpl = item["name"]
                _check(item, "obj:Template", "", tmpl, out)
                continue
            _check(item, inner if inner in ("str", "scalar") else f"obj:{inner}", f"{path}[{i}]", tmpl, out)
        return
    if kind.startswith("obj:"):
        _check_object(value, kind[4:], path, template, out)
        return
    raise ValueError(f"unknown schema type {kind}")


def _check_object(value: Any, name: str, path: str, template: str | None, out: list[Problem]) -> None:
    if not isinstance(value, dict):
        out.append(Problem(path or "(document)", f"must be a map, got {type(value).__name__}", template))
        return
    fields = SPEC[name]
    for key in REQUIRED.get(name, ()):
        if key not in value:
            out.append(Problem(_join(path, key), "is required", template))
    for key, sub in value.items():
        where = _join(path, str(key))
        rule = fields.get(key) if isinstance(key, str) else None
        if rule is None:
            near = _closest(str(key), fields)
            hint = f" (did you mean '{near}'?)" if near else ""
            out.append(
                Problem(
                    where, f"unknown field{hint}; rpops local refuses fields Argo does not define", template
                )
            )
            continue
        verdict, arg = rule
        if verdict == REFUSE:
            out.append(Problem(where, f"not supported by rpops local: {arg}", template))
        elif verdict == OK:
            _check(sub, arg, where, template, out)


def _closest(key: str, fields: dict[str, Rule]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
    return matches[0] if matches else None
