"""Workload configuration checks on Kubernetes objects (plain dicts, as in manifests or as the API
returns them), read from YAML files (multi-document, safe loader) or from the platform driver.

`check_objects` is pure: it takes objects and returns findings. Each check has a stable id; the
equivalent kubescape and Checkov ids are listed in CHECKS (and in docs/security-scan.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rpops.steps.security.model import Finding, Location, Notice
from rpops.steps.security.names import is_high_entropy_secret, is_secret_name, looks_like_placeholder

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    kubescape: str
    checkov: str
    remediation: str


CHECKS: dict[str, Check] = {
    c.id: c
    for c in (
        Check(
            "k8s-privileged",
            "Privileged container",
            "critical",
            "C-0057",
            "CKV_K8S_16",
            "remove securityContext.privileged or set it to false",
        ),
        Check(
            "k8s-privilege-escalation",
            "Privilege escalation allowed",
            "medium",
            "C-0016",
            "CKV_K8S_20",
            "set securityContext.allowPrivilegeEscalation: false",
        ),
        Check(
            "k8s-run-as-root",
            "May run as root",
            "medium",
            "C-0013",
            "CKV_K8S_23",
            "set runAsNonRoot: true and a non-zero runAsUser",
        ),
        Check(
            "k8s-readonly-rootfs",
            "Writable root filesystem",
            "low",
            "C-0017",
            "CKV_K8S_22",
            "set securityContext.readOnlyRootFilesystem: true (mount emptyDir where writes are needed)",
        ),
        Check(
            "k8s-host-namespace",
            "Host namespace shared",
            "high",
            "C-0038 (PID/IPC), C-0041 (network)",
            "CKV_K8S_17 (PID), CKV_K8S_18 (IPC), CKV_K8S_19 (network)",
            "remove hostPID/hostIPC/hostNetwork",
        ),
        Check(
            "k8s-host-port",
            "Host port",
            "medium",
            "C-0044",
            "CKV_K8S_26",
            "remove ports[].hostPort; use a Service",
        ),
        Check(
            "k8s-capabilities-added",
            "Capabilities added",
            "medium",
            "C-0046",
            "CKV_K8S_25 (CKV_K8S_39 SYS_ADMIN)",
            "remove securityContext.capabilities.add",
        ),
        Check(
            "k8s-capabilities-not-dropped",
            "Capabilities not dropped",
            "low",
            "C-0055 (Linux hardening)",
            "CKV_K8S_37 (CKV_K8S_28 NET_RAW)",
            "set securityContext.capabilities.drop: [ALL]",
        ),
        Check(
            "k8s-seccomp",
            "No seccomp profile",
            "low",
            "C-0210 (C-0055)",
            "CKV_K8S_31",
            "set securityContext.seccompProfile.type: RuntimeDefault",
        ),
        Check(
            "k8s-cpu-requests", "No CPU request", "low", "C-0050", "CKV_K8S_10", "set resources.requests.cpu"
        ),
        Check(
            "k8s-cpu-limits",
            "No CPU limit",
            "low",
            "C-0050 (C-0009)",
            "CKV_K8S_11",
            "set resources.limits.cpu",
        ),
        Check(
            "k8s-memory-requests",
            "No memory request",
            "low",
            "C-0004",
            "CKV_K8S_12",
            "set resources.requests.memory",
        ),
        Check(
            "k8s-memory-limits",
            "No memory limit",
            "medium",
            "C-0004 (C-0009)",
            "CKV_K8S_13",
            "set resources.limits.memory",
        ),
        Check(
            "k8s-image-latest",
            "Image tag latest or missing",
            "medium",
            "C-0075 (with pull policy)",
            "CKV_K8S_14",
            "pin an explicit version tag",
        ),
        Check(
            "k8s-image-digest",
            "Image not pinned by digest",
            "info",
            "—",
            "CKV_K8S_43",
            "reference the image as name@sha256:...",
        ),
        Check(
            "k8s-image-pull-policy",
            "Mutable image without imagePullPolicy: Always",
            "low",
            "C-0075",
            "CKV_K8S_15",
            "set imagePullPolicy: Always or pin the image by digest",
        ),
        Check("k8s-liveness-probe", "No liveness probe", "low", "C-0056", "CKV_K8S_8", "add livenessProbe"),
        Check(
            "k8s-readiness-probe", "No readiness probe", "low", "C-0018", "CKV_K8S_9", "add readinessProbe"
        ),
        Check(
            "k8s-sa-token-automount",
            "Service account token mounted",
            "low",
            "C-0034",
            "CKV_K8S_38",
            "set automountServiceAccountToken: false unless the pod calls the API",
        ),
        Check(
            "k8s-default-namespace",
            "Default namespace",
            "low",
            "C-0061",
            "CKV_K8S_21",
            "set metadata.namespace to a dedicated namespace",
        ),
        Check(
            "k8s-env-secret",
            "Secret value in environment",
            "high",
            "C-0012",
            "— (CKV_K8S_35 is the nearest)",
            "move the value to a Secret and use valueFrom.secretKeyRef or a mounted file",
        ),
        Check(
            "k8s-network-policy",
            "No NetworkPolicy selects the pods",
            "medium",
            "C-0260",
            "—",
            "add a NetworkPolicy whose podSelector matches the pod labels",
        ),
        Check(
            "k8s-pod-disruption-budget",
            "No PodDisruptionBudget",
            "low",
            "—",
            "—",
            "add a PodDisruptionBudget whose selector matches the pod labels",
        ),
    )
}

_DANGEROUS_CAPS = frozenset(
    {
        "ALL",
        "SYS_ADMIN",
        "NET_ADMIN",
        "SYS_PTRACE",
        "SYS_MODULE",
        "DAC_READ_SEARCH",
        "NET_RAW",
        "SYS_RAWIO",
        "BPF",
        "PERFMON",
        "SYS_BOOT",
    }
)
# kind -> path to the pod spec; labels live beside it under "metadata".
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_PDB_KINDS = frozenset({"Deployment", "StatefulSet"})


@dataclass
class K8sObject:
    doc: dict[str, Any]
    source: str  # manifest path (display form) or "live"
    index: int = 0  # document index within the file
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)  # key path -> 1-based line
    text: list[str] = field(default_factory=list, repr=False)  # the manifest's lines, for snippets

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "")

    @property
    def namespace(self) -> str:
        return str((self.doc.get("metadata") or {}).get("namespace") or "")

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name") or f"<unnamed #{self.index}>")

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"

    def line_of(self, path: tuple[Any, ...]) -> int:
        for i in range(len(path), -1, -1):
            line = self.lines.get(path[:i])
            if line:
                return line
        return 0


# ---- reading manifests ---------------------------------------------------------------------------


def _line_map(node: yaml.Node, prefix: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                path = (*prefix, key.value)
                out[path] = key.start_mark.line + 1
                _line_map(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*prefix, i), out)


def _expand_lists(obj: K8sObject) -> Iterator[K8sObject]:
    if obj.kind.endswith("List") and isinstance(obj.doc.get("items"), list):
        for i, item in enumerate(obj.doc["items"]):
            if isinstance(item, dict):
                lines = {k[2:]: v for k, v in obj.lines.items() if k[:2] == ("items", i)}
                yield K8sObject(item, obj.source, obj.index, lines, obj.text)
    else:
        yield obj


def read_manifest_file(path: Path, display: str) -> tuple[list[K8sObject], list[Notice]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Notice("config", "unreadable", display, f"cannot read: {exc}")]
    objects: list[K8sObject] = []
    notices: list[Notice] = []
    try:
        docs = list(yaml.safe_load_all(text))
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [
            Notice(
                "config",
                "invalid-yaml",
                display,
                f"not valid YAML: {getattr(exc, 'problem', exc)}",
                mark.line + 1 if mark else 0,
            )
        ]
    text_lines = text.splitlines()
    for i, (doc, node) in enumerate(zip(docs, nodes, strict=False)):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc:
            notices.append(
                Notice(
                    "config",
                    "not-an-object",
                    display,
                    f"document {i + 1} is not a Kubernetes object (no 'kind'); skipped",
                    node.start_mark.line + 1 if node else 0,
                )
            )
            continue
        lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            _line_map(node, (), lines)
        objects.extend(_expand_lists(K8sObject(doc, display, i, lines, text_lines)))
    return objects, notices


def read_manifests(paths: Iterable[Path], base: Path) -> tuple[list[K8sObject], list[Notice], int]:
    """Objects from files and directories (recursively); also returns the number of files read."""
    objects: list[K8sObject] = []
    notices: list[Notice] = []
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()))
        else:
            files.append(path)
    for file in dict.fromkeys(files):
        try:
            display = file.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            display = file.as_posix()
        found, problems = read_manifest_file(file, display)
        objects.extend(found)
        notices.extend(problems)
    return objects, notices, len(files)


# ---- checks --------------------------------------------------------------------------------------


def _get(doc: Any, path: Iterable[Any]) -> Any:
    for key in path:
        if isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(doc, list) and isinstance(key, int) and 0 <= key < len(doc):
            doc = doc[key]
        else:
            return None
    return doc


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """Kubernetes label selector semantics; an empty selector matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if str(labels.get(key)) != str(value) or key not in labels:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


class _Checker:
    def __init__(self, objects: list[K8sObject], default_namespace: str) -> None:
        self.objects = objects
        self.default_namespace = default_namespace
        self.findings: list[Finding] = []

    def report(
        self,
        check_id: str,
        obj: K8sObject,
        path: tuple[Any, ...],
        message: str,
        container: str = "",
        severity: str | None = None,
        confidence: str = "high",
    ) -> None:
        check = CHECKS[check_id]
        where = f"{obj.ref}" + (f" container {container}" if container else "")
        line = obj.line_of(path) if obj.source != "live" else 0
        field_path = ".".join(str(p) for p in path)
        snippet = obj.text[line - 1].strip() if 0 < line <= len(obj.text) else field_path
        fingerprint = hashlib.sha256(f"{check_id}|{obj.source}|{where}|{message}".encode()).hexdigest()[:32]
        self.findings.append(
            Finding(
                kind="config",
                rule_id=check_id,
                title=check.title,
                severity=severity or check.severity,
                confidence=confidence,
                message=f"{where}: {message}; fix: {check.remediation}",
                location=Location(obj.source, line, 1 if line else 0, logical=where),
                snippet=snippet,
                fingerprint=fingerprint,
                properties={
                    "kubescape": check.kubescape,
                    "checkov": check.checkov,
                    "object": obj.ref,
                    "container": container,
                    "field": field_path,
                },
            )
        )

    def run(self) -> list[Finding]:
        policies = [o for o in self.objects if o.kind == "NetworkPolicy"]
        budgets = [o for o in self.objects if o.kind == "PodDisruptionBudget"]
        accounts = {(o.namespace, o.name): o for o in self.objects if o.kind == "ServiceAccount"}
        for obj in self.objects:
            spec_path = _POD_SPEC_PATHS.get(obj.kind)
            if spec_path is None:
                continue
            spec = _get(obj.doc, spec_path)
            if not isinstance(spec, dict):
                continue
            self.check_pod(obj, spec_path, spec, accounts)
            labels = _get(obj.doc, (*spec_path[:-1], "metadata", "labels")) or {}
            if obj.kind == "Pod":
                labels = _get(obj.doc, ("metadata", "labels")) or {}
            namespace = obj.namespace or self.default_namespace
            if not any(
                (p.namespace or self.default_namespace) == namespace
                and selector_matches(_get(p.doc, ("spec", "podSelector")), labels)
                for p in policies
            ):
                self.report(
                    "k8s-network-policy",
                    obj,
                    ("metadata",),
                    f"no NetworkPolicy in namespace {namespace!r} selects labels {labels or '{}'}",
                )
            if obj.kind in _PDB_KINDS and not any(
                (b.namespace or self.default_namespace) == namespace
                and selector_matches(_get(b.doc, ("spec", "selector")), labels)
                for b in budgets
            ):
                self.report(
                    "k8s-pod-disruption-budget",
                    obj,
                    ("metadata",),
                    f"no PodDisruptionBudget in namespace {namespace!r} selects labels {labels or '{}'}",
                )
        return self.findings

    def check_pod(
        self,
        obj: K8sObject,
        base: tuple[str, ...],
        spec: dict[str, Any],
        accounts: dict[tuple[str, str], K8sObject],
    ) -> None:
        namespace = obj.namespace
        if not namespace or namespace == "default":
            self.report(
                "k8s-default-namespace",
                obj,
                ("metadata",),
                "runs in the default namespace"
                if namespace
                else "has no namespace (lands in the default namespace of whoever applies it)",
            )
        for flag in ("hostPID", "hostIPC", "hostNetwork"):
            if spec.get(flag) is True:
                self.report(
                    "k8s-host-namespace", obj, (*base, flag), f"{flag}: true shares the node's namespace"
                )
        pod_sc = spec.get("securityContext") or {}
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            account = accounts.get((namespace, str(spec.get("serviceAccountName") or "default")))
            automount = _get(account.doc, ("automountServiceAccountToken",)) if account else None
        if automount is not False:
            self.report(
                "k8s-sa-token-automount",
                obj,
                (*base, "automountServiceAccountToken"),
                "the service account token is mounted (automountServiceAccountToken is not false)",
            )
        groups = [("containers", True), ("initContainers", False), ("ephemeralContainers", False)]
        for group, needs_probes in groups:
            for i, container in enumerate(spec.get(group) or []):
                if isinstance(container, dict):
                    self.check_container(obj, (*base, group, i), container, pod_sc, needs_probes)

    def check_container(
        self,
        obj: K8sObject,
        path: tuple[Any, ...],
        c: dict[str, Any],
        pod_sc: dict[str, Any],
        needs_probes: bool,
    ) -> None:
        """One container: its security context, resources, image, probes (app containers only),
        environment and ports."""
        name = str(c.get("name") or path[-1])
        sc = c.get("securityContext") or {}
        self.check_privileges(obj, path, sc, pod_sc, name)
        self.check_hardening(obj, path, sc, pod_sc, name)
        self.check_resources(obj, path, c, name)
        self.check_image(obj, path, c, name)
        if needs_probes:
            for probe, check in (
                ("livenessProbe", "k8s-liveness-probe"),
                ("readinessProbe", "k8s-readiness-probe"),
            ):
                if not c.get(probe):
                    self.report(check, obj, path, f"no {probe}", name)
        self.check_env(obj, path, c, name)
        for i, port in enumerate(c.get("ports") or []):
            if isinstance(port, dict) and port.get("hostPort"):
                self.report(
                    "k8s-host-port",
                    obj,
                    (*path, "ports", i, "hostPort"),
                    f"hostPort {port['hostPort']} binds the node's port",
                    name,
                )

    def check_privileges(
        self, obj: K8sObject, path: tuple[Any, ...], sc: dict[str, Any], pod_sc: dict[str, Any], name: str
    ) -> None:
        """Who the container runs as and what it may become: privileged, privilege escalation, root."""
        scp = (*path, "securityContext")
        if sc.get("privileged") is True:
            self.report(
                "k8s-privileged", obj, (*scp, "privileged"), "privileged: true gives full host access", name
            )
        ape = sc.get("allowPrivilegeEscalation")
        if ape is not False:
            self.report(
                "k8s-privilege-escalation",
                obj,
                (*scp, "allowPrivilegeEscalation"),
                "allowPrivilegeEscalation is true"
                if ape is True
                else "allowPrivilegeEscalation is not set to false",
                name,
                "high" if ape is True else None,
            )
        run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_user == 0:
            self.report(
                "k8s-run-as-root", obj, (*scp, "runAsUser"), "runAsUser: 0 runs as root", name, "high"
            )
        elif non_root is not True and not (isinstance(run_as_user, int) and run_as_user > 0):
            self.report(
                "k8s-run-as-root",
                obj,
                (*scp, "runAsNonRoot"),
                "neither runAsNonRoot: true nor a non-zero runAsUser is set",
                name,
            )

    def check_hardening(
        self, obj: K8sObject, path: tuple[Any, ...], sc: dict[str, Any], pod_sc: dict[str, Any], name: str
    ) -> None:
        """What the container can touch: root filesystem, capabilities, seccomp."""
        scp = (*path, "securityContext")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.report(
                "k8s-readonly-rootfs",
                obj,
                (*scp, "readOnlyRootFilesystem"),
                "readOnlyRootFilesystem is not true",
                name,
            )
        caps = sc.get("capabilities") or {}
        added = [str(x).upper().removeprefix("CAP_") for x in caps.get("add") or []]
        if added:
            dangerous = sorted(set(added) & _DANGEROUS_CAPS)
            self.report(
                "k8s-capabilities-added",
                obj,
                (*scp, "capabilities", "add"),
                f"adds capabilities {', '.join(added)}",
                name,
                "high" if dangerous else None,
            )
        dropped = {str(x).upper() for x in caps.get("drop") or []}
        if "ALL" not in dropped:
            self.report(
                "k8s-capabilities-not-dropped",
                obj,
                (*scp, "capabilities", "drop"),
                "capabilities.drop does not include ALL",
                name,
            )
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        annotations = _get(obj.doc, ("metadata", "annotations")) or {}
        legacy = annotations.get("seccomp.security.alpha.kubernetes.io/pod")
        if seccomp not in ("RuntimeDefault", "Localhost") and legacy not in (
            "runtime/default",
            "docker/default",
        ):
            self.report(
                "k8s-seccomp",
                obj,
                (*scp, "seccompProfile"),
                f"seccompProfile is {seccomp or 'not set'} (Unconfined by default)",
                name,
            )

    def check_resources(self, obj: K8sObject, path: tuple[Any, ...], c: dict[str, Any], name: str) -> None:
        resources = c.get("resources") or {}
        for kind, key, check in (
            ("requests", "cpu", "k8s-cpu-requests"),
            ("limits", "cpu", "k8s-cpu-limits"),
            ("requests", "memory", "k8s-memory-requests"),
            ("limits", "memory", "k8s-memory-limits"),
        ):
            if not (resources.get(kind) or {}).get(key):
                self.report(check, obj, (*path, "resources", kind), f"no {key} {kind[:-1]}", name)

    def check_env(self, obj: K8sObject, path: tuple[Any, ...], c: dict[str, Any], name: str) -> None:
        """Literal secret values in the environment (a secret-like name holding a real-looking value)."""
        for i, env in enumerate(c.get("env") or []):
            if not isinstance(env, dict):
                continue
            value = env.get("value")
            env_name = str(env.get("name") or "")
            if (
                isinstance(value, str)
                and value
                and is_secret_name(env_name)
                and not looks_like_placeholder(value)
            ):
                strong = is_high_entropy_secret(value)
                self.report(
                    "k8s-env-secret",
                    obj,
                    (*path, "env", i, "value"),
                    f"env {env_name} holds a literal secret value",
                    name,
                    confidence="high" if strong else "medium",
                )

    def check_image(self, obj: K8sObject, path: tuple[Any, ...], c: dict[str, Any], name: str) -> None:
        image = str(c.get("image") or "")
        if not image:
            return
        has_digest = "@" in image
        repo = image.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if not has_digest and tag in ("", "latest"):
            self.report(
                "k8s-image-latest",
                obj,
                (*path, "image"),
                f"image {image!r} " + ("uses :latest" if tag else "has no tag (means :latest)"),
                name,
            )
        if not has_digest:
            self.report(
                "k8s-image-digest", obj, (*path, "image"), f"image {image!r} is not pinned by digest", name
            )
            policy = c.get("imagePullPolicy")
            if policy != "Always":
                effective = policy or ("Always" if tag in ("", "latest") else "IfNotPresent")
                if effective != "Always":
                    self.report(
                        "k8s-image-pull-policy",
                        obj,
                        (*path, "imagePullPolicy"),
                        f"imagePullPolicy is {effective} for a mutable tag: nodes may run a stale image",
                        name,
                    )


def check_objects(objects: list[K8sObject], default_namespace: str = "default") -> list[Finding]:
    """Run every check over the objects. Pure: no I/O."""
    return _Checker(objects, default_namespace).run()
