"""A fake Kubernetes API server for the tests: the resources and verbs ShakeOut's catalogue uses.

No cluster can run on the test machine (no container engine), so the Kubernetes target's
faults are proven against this server through the real ``kubernetes`` client and the real
``chaosk8s`` activities. It implements:

- pods: list (namespaced and all namespaces, ``labelSelector``/``fieldSelector``), get,
  delete, and eviction (``POST pods/{name}/eviction``, refused with 429 when a
  PodDisruptionBudget's ``minAvailable`` would be broken, as the real API does);
- nodes: list (selectors), get, patch (cordon/uncordon);
- deployments: list, get, create, patch, delete; secrets: get, create, patch, delete;
  ConfigMaps: get, patch (seeded from the manifests); events: list; PodDisruptionBudgets:
  create (seeded from the manifests);
- ``batch/v1`` Jobs: create, get, delete. The fake "controller" finishes a Job as it is
  created: it calls ``FakeCluster.job_runner`` (the tests run the Job's command there, against
  a local directory standing for the volume) and marks it Complete, or Failed when the runner
  says so; without a runner every Job succeeds;
- services and ``discovery.k8s.io/v1`` EndpointSlices: create, get, delete (the in-cluster
  Locust workers' ``locust-master`` Service and its EndpointSlice);
- CustomResourceDefinitions: get (present only for the CRDs the test installs) and namespaced
  custom objects (create/get/list/delete) for Chaos Mesh's kinds;
- patches in the three formats the client sends: strategic merge (a dict body), JSON merge
  and JSON patch (a list body).

A tiny synchronous "controller" runs after every change: each Deployment's pods are made to
match its template and replica count, spread over the schedulable nodes by zone; a pod whose
template sets ``SHAKEOUT_CRASH_ON_START=1`` never becomes ready (CrashLoopBackOff), nor does one
whose image names a registry under ``.invalid`` (ImagePullBackOff), and the
Deployment's ``Progressing`` condition turns to ``ProgressDeadlineExceeded`` at once (the fake
has no clock); old pods are kept until the new ones are ready (``maxUnavailable: 0``).

``FakeCluster.log`` records every request (method, path) and ``FakeCluster.writes`` what each
successful POST or PATCH answered, so a test can see a state that a revert has undone since.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- selectors -------------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (a,b)`` parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def label_matches(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Evaluate a label selector string the way the API server does (equality and set terms)."""
    labels = labels or {}
    for term in _split_terms(selector or ""):
        if "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        else:
            match = _SET_TERM.match(term)
            if match is None:
                raise ValueError(f"bad label selector term {term!r}")
            negated, key, op, values = match.groups()
            if op is None:
                if (key in labels) == bool(negated):
                    return False
            else:
                allowed = {v.strip() for v in values.split(",")}
                if (labels.get(key) in allowed) != (op == "in"):
                    return False
    return True


def _field(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def field_matches(selector: str | None, obj: Obj) -> bool:
    """Evaluate a field selector (``a.b=x``, ``a.b==x``, ``a.b!=x``, comma-separated)."""
    for term in _split_terms(selector or ""):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _field(obj, key.strip()) == value.strip():
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if _field(obj, key.strip()) != value.strip():
                return False
    return True


# --- patches (hand-written: the fake must apply exactly what the client sends, and the three
# formats are short; a library for each would only be used here) ------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch as used here: lists of named objects merge by ``name``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value):
            merged = [copy.deepcopy(v) for v in result.get(key) or []]
            for item in value:
                index = next((i for i, m in enumerate(merged) if m["name"] == item["name"]), None)
                if item.get("$patch") == "delete":
                    if index is not None:
                        merged.pop(index)
                elif index is None:
                    merged.append({k: v for k, v in item.items() if not k.startswith("$")})
                else:
                    merged[index] = strategic_merge_patch(merged[index], item)
            result[key] = merged
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(target: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902 JSON patch (add, replace, remove, test)."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = _pointer(op["path"])
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "remove":
                parent.pop(index)
            elif kind == "test" and parent[index] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif kind in ("add", "replace"):
            parent[last] = op["value"]
        elif kind == "remove":
            del parent[last]
        elif kind == "test" and parent.get(last) != op["value"]:
            raise ValueError(f"test failed at {op['path']}")
    return doc


class ApiError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


# --- the cluster state -----------------------------------------------------------------------


class FakeCluster:
    """The objects the fake API serves, with a synchronous Deployment controller."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, Obj] = {}
        self.pods: dict[tuple[str, str], Obj] = {}
        self.deployments: dict[tuple[str, str], Obj] = {}
        self.secrets: dict[tuple[str, str], Obj] = {}
        self.configmaps: dict[tuple[str, str], Obj] = {}
        self.jobs: dict[tuple[str, str], Obj] = {}
        self.job_runner: Callable[[Obj], bool] | None = None
        self.pdbs: dict[tuple[str, str], Obj] = {}
        self.events: dict[tuple[str, str], Obj] = {}
        self.services: dict[tuple[str, str], Obj] = {}
        self.endpointslices: dict[tuple[str, str], Obj] = {}
        self.crds: set[str] = set()
        self.custom: dict[tuple[str, str, str, str], Obj] = {}
        self.log: list[tuple[str, str]] = []
        self.writes: list[tuple[str, str, Obj]] = []
        self._version = itertools.count(1)
        self._names = itertools.count(1)

    # seeding

    def add_node(self, name: str, zone: str) -> None:
        """Add a ready, schedulable node in ``zone``."""
        with self.lock:
            self.nodes[name] = self._meta(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "topology.kubernetes.io/zone": zone,
                        },
                    },
                    "spec": {},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }
            )

    def apply_manifests(self, paths: list[Path], namespace: str) -> None:
        """Create the Deployments, Secrets, ConfigMaps and PodDisruptionBudgets of manifests."""
        with self.lock:
            for path in paths:
                for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                    if not doc:
                        continue
                    kind = doc["kind"]
                    doc.setdefault("metadata", {})["namespace"] = namespace
                    key = (namespace, doc["metadata"]["name"])
                    if kind == "Deployment":
                        doc["metadata"]["generation"] = 1
                        self.deployments[key] = self._meta(doc)
                    elif kind == "Secret":
                        self.secrets[key] = self._meta(_encode_secret(doc))
                    elif kind == "PodDisruptionBudget":
                        self.pdbs[key] = self._meta(doc)
                    elif kind == "ConfigMap":
                        self.configmaps[key] = self._meta(doc)
            self.reconcile()

    def _meta(self, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(next(self._version))
        return obj

    def event(self, ns: str, kind: str, name: str, reason: str, message: str) -> None:
        """Record a core/v1 Event about an object, as the real controllers do."""
        ev_name = f"{name}.{next(self._names):06d}"
        self.events[(ns, ev_name)] = self._meta(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": ev_name, "namespace": ns},
                "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                "reason": reason,
                "message": message,
                "type": "Warning" if reason in ("BackOff", "Evicted", "Killing") else "Normal",
                "count": 1,
                "firstTimestamp": _now(),
                "lastTimestamp": _now(),
                "source": {"component": "fake-controller"},
            }
        )

    # the controller

    def reconcile(self) -> None:
        """Make every Deployment's pods match its spec; update its status."""
        with self.lock:
            for (ns, name), dep in self.deployments.items():
                self._reconcile_deployment(ns, name, dep)

    def run_job(self, job: Obj) -> None:
        """Finish a Job at once: its runner's verdict (success without one) becomes its status."""
        succeeded = self.job_runner(job) if self.job_runner is not None else True
        condition = "Complete" if succeeded else "Failed"
        job["status"] = {
            "startTime": _now(),
            **({"completionTime": _now(), "succeeded": 1} if succeeded else {"failed": 1}),
            "conditions": [{"type": condition, "status": "True", "lastTransitionTime": _now()}],
        }
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        self.event(ns, "Job", name, "Completed" if succeeded else "BackoffLimitExceeded", condition)

    def _pods_of(self, ns: str, name: str) -> list[Obj]:
        return [
            p
            for (pns, _), p in sorted(self.pods.items())
            if pns == ns and p["metadata"]["labels"].get("fake/deployment") == name
        ]

    def _reconcile_deployment(self, ns: str, name: str, dep: Obj) -> None:
        template = dep["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        replicas = int(dep["spec"].get("replicas", 1))
        pods = self._pods_of(ns, name)
        new = [p for p in pods if p["metadata"]["labels"]["pod-template-hash"] == digest]
        old = [p for p in pods if p not in new]
        for extra in new[replicas:]:
            self._delete_pod(ns, extra["metadata"]["name"], "Killing")
            new.remove(extra)
        while len(new) < replicas:
            new.append(self._create_pod(ns, name, dep, digest))
        ready_new = [p for p in new if _pod_ready(p)]
        if len(ready_new) == replicas:
            for pod in old:
                self._delete_pod(ns, pod["metadata"]["name"], "Killing")
            old = []
        if len(ready_new) == replicas and len(ready_new) < len(new):
            pass  # cannot happen: kept for clarity of the rollout rule above
        available = [p for p in new + old if _pod_ready(p)]
        crashing = any(not _pod_ready(p) and p["spec"].get("nodeName") for p in new)
        if len(ready_new) == replicas and not old:
            progressing = ("True", "NewReplicaSetAvailable")
        elif crashing:
            progressing = ("False", "ProgressDeadlineExceeded")
        else:
            progressing = ("True", "ReplicaSetUpdated")
        dep["status"] = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": len(new) + len(old),
            "updatedReplicas": len(new),
            "readyReplicas": len(available),
            "availableReplicas": len(available),
            "unavailableReplicas": max(0, replicas - len(available)),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if len(available) >= replicas else "False",
                    "reason": "MinimumReplicasAvailable",
                    "lastTransitionTime": _now(),
                },
                {
                    "type": "Progressing",
                    "status": progressing[0],
                    "reason": progressing[1],
                    "lastTransitionTime": _now(),
                },
            ],
        }

    def _schedule(self, ns: str, name: str) -> str | None:
        schedulable = [
            n for n in sorted(self.nodes) if not self.nodes[n]["spec"].get("unschedulable")
        ]
        if not schedulable:
            return None
        count: dict[str, int] = {}
        for pod in self._pods_of(ns, name):
            node = pod["spec"].get("nodeName")
            if node in self.nodes:
                zone = self.nodes[node]["metadata"]["labels"]["topology.kubernetes.io/zone"]
                count[zone] = count.get(zone, 0) + 1

        def zone_of(node: str) -> str:
            return str(self.nodes[node]["metadata"]["labels"]["topology.kubernetes.io/zone"])

        return min(schedulable, key=lambda n: (count.get(zone_of(n), 0), n))

    def _create_pod(self, ns: str, name: str, dep: Obj, digest: str) -> Obj:
        template = copy.deepcopy(dep["spec"]["template"])
        pod_name = f"{name}-{digest[:5]}-{next(self._names):05d}"
        node = self._schedule(ns, name)
        containers = template["spec"]["containers"]
        crash = any(
            e.get("name") == "SHAKEOUT_CRASH_ON_START" and e.get("value") in ("1", "true")
            for c in containers
            for e in c.get("env") or []
        )
        # An image whose registry host is under .invalid (RFC 2606) can never be pulled.
        unpullable = any(".invalid" in c.get("image", "").split("/")[0] for c in containers)
        ready = node is not None and not crash and not unpullable
        pod = self._meta(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": ns,
                    "labels": {
                        **(template["metadata"].get("labels") or {}),
                        "pod-template-hash": digest,
                        "fake/deployment": name,
                    },
                    "annotations": template["metadata"].get("annotations") or {},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": f"{name}-{digest}",
                            "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{ns}/{name}/{digest}")),
                            "controller": True,
                        }
                    ],
                },
                "spec": {**template["spec"], "nodeName": node},
                "status": {
                    "phase": "Running" if node else "Pending",
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c.get("image", ""),
                            "imageID": "",
                            "ready": ready,
                            "restartCount": 3 if crash and node else 0,
                            "state": (
                                {"waiting": {"reason": "CrashLoopBackOff"}}
                                if crash and node
                                else {"waiting": {"reason": "ImagePullBackOff"}}
                                if unpullable and node
                                else {"running": {"startedAt": _now()}}
                            ),
                        }
                        for c in containers
                    ],
                },
            }
        )
        self.pods[(ns, pod_name)] = pod
        if node is None:
            self.event(ns, "Pod", pod_name, "FailedScheduling", "0 nodes are available")
        else:
            self.event(ns, "Pod", pod_name, "Scheduled", f"assigned {ns}/{pod_name} to {node}")
            if crash:
                self.event(ns, "Pod", pod_name, "BackOff", "Back-off restarting failed container")
        return pod

    def _delete_pod(self, ns: str, name: str, reason: str) -> Obj:
        pod = self.pods.pop((ns, name), None)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        self.event(ns, "Pod", name, reason, f"Stopping container of {name}")
        return pod

    def evict(self, ns: str, name: str) -> None:
        """Evict a pod unless a PodDisruptionBudget forbids it (429, as the API answers)."""
        pod = self.pods.get((ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        for (pns, pdb_name), pdb in self.pdbs.items():
            selector = pdb["spec"].get("selector", {}).get("matchLabels", {})
            if pns != ns or not all(
                pod["metadata"]["labels"].get(k) == v for k, v in selector.items()
            ):
                continue
            healthy = [
                p
                for (qns, _), p in self.pods.items()
                if qns == ns
                and _pod_ready(p)
                and all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
            ]
            minimum = int(pdb["spec"].get("minAvailable", 0))
            if _pod_ready(pod) and len(healthy) - 1 < minimum:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    f"Cannot evict pod as it would violate the pod's disruption budget {pdb_name}",
                )
        self._delete_pod(ns, name, "Evicted")

    def pods_on(self, zone: str) -> list[Obj]:
        """Pods running on the nodes of a zone (a test helper)."""
        with self.lock:
            nodes = {
                n
                for n, obj in self.nodes.items()
                if obj["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone
            }
            return [p for p in self.pods.values() if p["spec"].get("nodeName") in nodes]


def _pod_ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def _encode_secret(doc: Obj) -> Obj:
    """Turn ``stringData`` into base64 ``data``, as the API server stores a Secret."""
    import base64

    data = dict(doc.get("data") or {})
    for key, value in (doc.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    doc["data"] = data
    return doc


# --- HTTP ------------------------------------------------------------------------------------

_NS = r"/namespaces/(?P<ns>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern + r"$"))
    for name, pattern in [
        ("pods", r"/api/v1" + _NS + r"/pods"),
        ("all_pods", r"/api/v1/pods"),
        ("pod", r"/api/v1" + _NS + r"/pods/(?P<name>[^/]+)"),
        ("eviction", r"/api/v1" + _NS + r"/pods/(?P<name>[^/]+)/eviction"),
        ("nodes", r"/api/v1/nodes"),
        ("node", r"/api/v1/nodes/(?P<name>[^/]+)"),
        ("deployments", r"/apis/apps/v1" + _NS + r"/deployments"),
        ("deployment", r"/apis/apps/v1" + _NS + r"/deployments/(?P<name>[^/]+)"),
        ("secrets", r"/api/v1" + _NS + r"/secrets"),
        ("secret", r"/api/v1" + _NS + r"/secrets/(?P<name>[^/]+)"),
        ("events", r"/api/v1" + _NS + r"/events"),
        ("configmap", r"/api/v1" + _NS + r"/configmaps/(?P<name>[^/]+)"),
        ("jobs", r"/apis/batch/v1" + _NS + r"/jobs"),
        ("job", r"/apis/batch/v1" + _NS + r"/jobs/(?P<name>[^/]+)"),
        ("services", r"/api/v1" + _NS + r"/services"),
        ("service", r"/api/v1" + _NS + r"/services/(?P<name>[^/]+)"),
        ("endpointslices", r"/apis/discovery.k8s.io/v1" + _NS + r"/endpointslices"),
        ("endpointslice", r"/apis/discovery.k8s.io/v1" + _NS + r"/endpointslices/(?P<name>[^/]+)"),
        ("crd", r"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/(?P<name>[^/]+)"),
        ("customs", r"/apis/(?P<group>[^/]+)/(?P<version>v[^/]+)" + _NS + r"/(?P<plural>[^/]+)"),
        (
            "custom",
            r"/apis/(?P<group>[^/]+)/(?P<version>v[^/]+)"
            + _NS
            + r"/(?P<plural>[^/]+)/(?P<name>[^/]+)",
        ),
    ]
]


def _success() -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}


def _list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the cluster's ``log`` records every request instead."""

    def _answer(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._body()
        with self.cluster.lock:
            self.cluster.log.append((self.command, url.path))
            found = next(((r, m) for r, p in _ROUTES if (m := p.match(url.path))), None)
            if found is None:
                self._answer(404, ApiError(404, "NotFound", f"no route {url.path}").status())
                return
            try:
                route, match = found
                code, answer = self._dispatch(route, match.groupdict(), query, body)
            except ApiError as exc:
                code, answer = exc.code, exc.status()
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                code, answer = (
                    422,
                    ApiError(422, "Invalid", f"{type(exc).__name__}: {exc}").status(),
                )
            if self.command in ("POST", "PATCH") and code < 300:
                # what each write left, for tests that look at a state the revert undid since
                self.cluster.writes.append((self.command, url.path, copy.deepcopy(answer)))
        self._answer(code, answer)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

    def _patch(self, obj: Obj, body: Any) -> Obj:
        ctype = self.headers.get("Content-Type", "")
        if isinstance(body, list) or "json-patch" in ctype:
            return json_patch(obj, body)
        if "strategic-merge-patch" in ctype:
            return strategic_merge_patch(obj, body)  # type: ignore[no-any-return]
        if "merge-patch" in ctype:
            return merge_patch(obj, body)  # type: ignore[no-any-return]
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")

    def _dispatch(
        self, route: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Obj]:
        c, method = self.cluster, self.command
        ns, name = args.get("ns", ""), args.get("name", "")
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")

        def select(kind: str, objects: Iterator[Obj]) -> tuple[int, Obj]:
            items = [
                o
                for o in objects
                if label_matches(labels, o["metadata"].get("labels")) and field_matches(fields, o)
            ]
            return 200, _list(kind, items)

        def get(store: dict[Any, Obj], key: Any, what: str) -> Obj:
            if key not in store:
                raise ApiError(
                    404,
                    "NotFound",
                    f'{what} "{key[-1] if isinstance(key, tuple) else key}" not found',
                )
            return store[key]

        if route == "pods" and method == "GET":
            return select("PodList", (p for (pns, _), p in c.pods.items() if pns == ns))
        if route == "all_pods" and method == "GET":
            return select("PodList", iter(list(c.pods.values())))
        if route == "pod":
            if method == "GET":
                return 200, get(c.pods, (ns, name), "pods")
            if method == "DELETE":
                pod = c._delete_pod(ns, name, "Killing")
                c.reconcile()
                return 200, pod
        if route == "eviction" and method == "POST":
            c.evict(ns, name)
            c.reconcile()
            return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}
        if route == "nodes" and method == "GET":
            return select("NodeList", iter(list(c.nodes.values())))
        if route == "node":
            node = get(c.nodes, name, "nodes")
            if method == "PATCH":
                c.nodes[name] = node = c._meta(self._patch(node, body))
                c.reconcile()
            return 200, node
        if route == "deployments":
            if method == "GET":
                return select(
                    "DeploymentList", (d for (dns, _), d in c.deployments.items() if dns == ns)
                )
            if method == "POST":
                key = (ns, body["metadata"]["name"])
                if key in c.deployments:
                    raise ApiError(409, "AlreadyExists", f'deployments "{key[1]}" already exists')
                body["metadata"].update(namespace=ns, generation=1)
                c.deployments[key] = c._meta(body)
                c.reconcile()
                return 201, body
        if route == "deployment":
            dep = get(c.deployments, (ns, name), "deployments.apps")
            if method == "PATCH":
                patched = self._patch(dep, body)
                if patched.get("spec") != dep.get("spec"):
                    patched["metadata"]["generation"] = dep["metadata"].get("generation", 1) + 1
                c.deployments[(ns, name)] = dep = c._meta(patched)
                c.reconcile()
            elif method == "DELETE":
                del c.deployments[(ns, name)]
                for pod in c._pods_of(ns, name):
                    c._delete_pod(ns, pod["metadata"]["name"], "Killing")
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Success",
                    "metadata": {},
                }
            return 200, dep
        if route == "secrets" and method == "POST":
            key = (ns, body["metadata"]["name"])
            if key in c.secrets:
                raise ApiError(409, "AlreadyExists", f'secrets "{key[1]}" already exists')
            body["metadata"]["namespace"] = ns
            c.secrets[key] = c._meta(_encode_secret(body))
            return 201, c.secrets[key]
        if route == "secret":
            secret = get(c.secrets, (ns, name), "secrets")
            if method == "PATCH":
                c.secrets[(ns, name)] = secret = c._meta(self._patch(secret, body))
            elif method == "DELETE":
                del c.secrets[(ns, name)]
            return 200, secret
        if route == "configmap":
            cm = get(c.configmaps, (ns, name), "configmaps")
            if method == "PATCH":
                c.configmaps[(ns, name)] = cm = c._meta(self._patch(cm, body))
            return 200, cm
        if route == "jobs" and method == "POST":
            key = (ns, body["metadata"]["name"])
            if key in c.jobs:
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{key[1]}" already exists')
            body["metadata"]["namespace"] = ns
            c.jobs[key] = job = c._meta(body)
            c.run_job(job)
            return 201, job
        if route == "job":
            job = get(c.jobs, (ns, name), "jobs.batch")
            if method == "DELETE":
                del c.jobs[(ns, name)]
                return 200, _success()
            return 200, job
        simple = {
            "services": (c.services, "services"),
            "endpointslices": (c.endpointslices, "endpointslices.discovery.k8s.io"),
        }
        if route in simple and method == "POST":
            store, what = simple[route]
            key = (ns, body["metadata"]["name"])
            if key in store:
                raise ApiError(409, "AlreadyExists", f'{what} "{key[1]}" already exists')
            body["metadata"]["namespace"] = ns
            store[key] = c._meta(body)
            return 201, body
        if route in ("service", "endpointslice"):
            store, what = simple[route + "s"]
            obj = get(store, (ns, name), what)
            if method == "DELETE":
                del store[(ns, name)]
                # as the real API: a Service's DELETE answers the object, an EndpointSlice's
                # a Status (the client parses them as V1Service and V1Status)
                return 200, obj if route == "service" else _success()
            if method == "GET":
                return 200, obj
        if route == "events" and method == "GET":
            return select("EventList", (e for (ens, _), e in c.events.items() if ens == ns))
        if route == "crd" and method == "GET":
            if name not in c.crds:
                raise ApiError(404, "NotFound", f'customresourcedefinitions "{name}" not found')
            return 200, {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {
                    "group": name.split(".", 1)[1],
                    "names": {"plural": name.split(".", 1)[0], "kind": name.split(".", 1)[0]},
                    "scope": "Namespaced",
                    "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
                },
            }
        if route in ("customs", "custom"):
            group, plural = args["group"], args["plural"]
            if f"{plural}.{group}" not in c.crds:
                raise ApiError(404, "NotFound", f"the server could not find {plural}.{group}")
            if route == "customs" and method == "POST":
                key = (group, plural, ns, body["metadata"]["name"])
                if key in c.custom:
                    raise ApiError(409, "AlreadyExists", f'{plural} "{key[-1]}" already exists')
                body["metadata"]["namespace"] = ns
                c.custom[key] = c._meta(body)
                return 201, body
            if route == "customs" and method == "GET":
                items = [
                    o for (g, p, n, _), o in c.custom.items() if (g, p, n) == (group, plural, ns)
                ]
                return 200, _list("List", items)
            obj = get(c.custom, (group, plural, ns, name), plural)
            if method == "DELETE":
                del c.custom[(group, plural, ns, name)]
            return 200, obj
        raise ApiError(405, "MethodNotAllowed", f"{method} {route} is not implemented by the fake")


class FakeApiServer:
    """The fake API on 127.0.0.1 (random port) in a thread; ``close()`` stops it."""

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()
        handler = type("Handler", (_Handler,), {"cluster": self.cluster})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def write_kubeconfig(self, path: Path, context: str = "kind-shakeout") -> Path:
        """A kubeconfig whose ``context`` points at this server (no TLS, a dummy token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "fake", "user": "fake", "namespace": "shop"},
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
