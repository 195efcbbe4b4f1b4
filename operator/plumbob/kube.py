"""The module that talks to the Kubernetes API server (the agent writes its report through
:mod:`plumbob.kubehttp`, which defines the error tree below and shares it with this module).

Everything else works on pydantic models and plain dicts; this module turns intentions (create
this Job, patch that status, post this Event) into API calls, counts every write (the scale
benchmark reports writes per node), and maps API failures onto a small error tree::

    KubeError                    anything the API refused or could not answer
     ├── ConflictError           409: already exists, or a resourceVersion precondition failed
     ├── NotFoundError           404
     └── InvalidError            422: admission or schema rejected the object (message names the field)

Credentials: a service account (:func:`plumbob.kubehttp.service_account`: the directory named by
``PLUMBOB_SERVICEACCOUNT_DIR``, which the simulated kubelet sets since it cannot mount files, or
the in-cluster one), else a kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from plumbob import kubehttp, telemetry
from plumbob.kubehttp import USER_AGENT, api_error, service_account
from plumbob.names import GROUP, VERSION

FIELD_MANAGER = "plumbob"
# The error tree is kubehttp's, shared with the agent's small client; named here for every caller.
KubeError = kubehttp.KubeError
ConflictError = kubehttp.ConflictError
NotFoundError = kubehttp.NotFoundError
InvalidError = kubehttp.InvalidError
_API_ERRORS = telemetry.meter().create_counter(
    "plumbob_api_errors_total", description="Kubernetes API requests that failed, by HTTP status code"
)


def _error(exc: ApiException) -> KubeError:
    status = int(exc.status or 0)
    _API_ERRORS.add(1, {"code": str(status)})
    return api_error(status, str(exc.reason), exc.body)


def _as_dict(res: object) -> dict[str, Any]:
    """A custom-objects response (typed ``object`` by the client; it is the decoded JSON object)."""
    return dict(cast("Mapping[str, Any]", res))


def _raw(res: object) -> dict[str, Any]:
    """The decoded JSON of a response read with ``_preload_content=False`` (typed as the model)."""
    return _as_dict(json.loads(cast("Any", res).data))


def api_client(env: Mapping[str, str] | None = None) -> client.ApiClient:
    """An API client from the environment: service-account dir, in-cluster, or kubeconfig."""
    api = _api_client(env)
    api.user_agent = USER_AGENT
    return api


def _api_client(env: Mapping[str, str] | None) -> client.ApiClient:
    account = service_account(os.environ if env is None else env)
    cfg = client.Configuration()
    if account is not None:
        cfg.host = account.url
        cfg.ssl_ca_cert = account.ca_file
        cfg.api_key = {"authorization": "Bearer " + account.token}
        return client.ApiClient(cfg)
    config.load_kube_config(  # type: ignore[no-untyped-call]  # kubernetes.config is not annotated
        config_file=(os.environ if env is None else env).get("KUBECONFIG"), client_configuration=cfg
    )
    return client.ApiClient(cfg)


class Kube:
    """Typed access to the few API operations Plumbob performs. Thread-safe."""

    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or api_client()
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.version_api = client.VersionApi(self.api)
        self.authz = client.AuthorizationV1Api(self.api)
        self.authn = client.AuthenticationV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self._lock = threading.Lock()
        self.writes: Counter[str] = Counter()

    def _count(self, what: str) -> None:
        with self._lock:
            self.writes[what] += 1

    # ---- plumbob.dev objects -----------------------------------------------------------------
    def list_objects(self, plural: str, namespace: str | None = None, labels: str | None = None) -> list[Any]:
        try:
            if namespace is None:
                res = self.custom.list_cluster_custom_object(GROUP, VERSION, plural, label_selector=labels)
            else:
                res = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, label_selector=labels
                )
        except ApiException as exc:
            raise _error(exc) from exc
        return list(cast("Mapping[str, Any]", res).get("items", []))

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        try:
            if namespace is None:
                res = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                res = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(res)

    def create_object(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self._count(f"create {plural}")
        try:
            if namespace is None:
                res = self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
            else:
                res = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(res)

    def replace_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a cluster-scoped object (``metadata.resourceVersion`` guards the write)."""
        self._count(f"update {plural}")
        try:
            res = self.custom.replace_cluster_custom_object(
                GROUP, VERSION, plural, body["metadata"]["name"], body
            )
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(res)

    def patch_status(
        self, plural: str, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch ``status`` through the status subresource."""
        self._count(f"status {plural}")
        where = f"/namespaces/{namespace}" if namespace else ""
        path = f"/apis/{GROUP}/{VERSION}{where}/{plural}/{name}/status"
        return self._send("PATCH", path, {"status": status}, "application/merge-patch+json")

    # ---- any API object, read-only (cluster-level rules) -------------------------------------
    def list_api_objects(
        self, api_version: str, plural: str, kind: str, page: int = 500
    ) -> list[dict[str, Any]]:
        """Every object of one resource, cluster-wide (see :meth:`list_api_collection`)."""
        return self.list_api_collection(api_version, plural, kind, page=page)[0]

    def list_api_collection(
        self,
        api_version: str,
        plural: str,
        kind: str,
        *,
        page: int = 500,
        fields: str | None = None,
        labels: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Every object of one resource, cluster-wide (those the selectors ``fields`` and ``labels`` select),
        in pages of ``page``; ``managedFields`` dropped; and the list's resourceVersion (0 when it
        is not a number).

        Items of a LIST carry no ``apiVersion`` and ``kind``: they are set here, so each object
        stands on its own.
        """
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        out: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", page)] + ([("continue", token)] if token else [])
            query += [("fieldSelector", fields)] if fields else []
            query += [("labelSelector", labels)] if labels else []
            body = self._get(f"{base}/{plural}", query)
            for item in body.get("items") or []:
                item["apiVersion"], item["kind"] = api_version, kind
                (item.get("metadata") or {}).pop("managedFields", None)
                out.append(item)
            meta = body.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")  # the first page's: the snapshot's
            token = meta.get("continue") or None
            if not token:
                return out, int(version) if version.isdigit() else 0

    def watch_api_collection(
        self,
        api_version: str,
        plural: str,
        kind: str,
        resource_version: int,
        *,
        timeout: int = 300,
        fields: str | None = None,
        labels: str | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch one resource cluster-wide from ``resource_version``: ``(type, object)`` per event
        (ADDED, MODIFIED, DELETED, BOOKMARK), objects as :meth:`list_api_collection` gives them.

        Ends when the server closes the stream (after about ``timeout`` seconds). A refused watch,
        or an ERROR event (410 Gone: the version is too old, LIST again), raises :class:`KubeError`.
        """
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        method, url, headers, body, post = self.api.param_serialize(
            "GET",
            f"{base}/{plural}",
            query_params=[
                ("watch", "true"),
                ("resourceVersion", str(resource_version)),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", timeout),
                *([("fieldSelector", fields)] if fields else []),
                *([("labelSelector", labels)] if labels else []),
            ],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                method, url, header_params=headers, body=body, post_params=post, _request_timeout=timeout + 30
            )
        except ApiException as exc:
            raise _error(exc) from exc
        raw = response.response
        try:
            if response.status >= 400:
                raise _error(ApiException(status=response.status, reason=response.reason, body=raw.data))
            pending = b""
            for chunk in raw.stream(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise KubeError(int(obj.get("code") or 500), str(obj.get("message") or obj))
                    obj["apiVersion"], obj["kind"] = api_version, kind
                    (obj.get("metadata") or {}).pop("managedFields", None)
                    yield str(event.get("type")), obj
        finally:
            raw.release_conn()

    def resource_plural(self, api_version: str, kind: str) -> str | None:
        """The plural the API server serves ``kind`` of ``api_version`` under (discovery), or None."""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            res = self._get(path, [])
        except NotFoundError:
            return None
        for r in res.get("resources") or []:
            if r.get("kind") == kind and "/" not in str(r.get("name")) and "list" in (r.get("verbs") or []):
                return str(r["name"])
        return None

    def _send(self, method: str, path: str, body: dict[str, Any], content_type: str) -> dict[str, Any]:
        """``method`` ``body`` (encoded as JSON as it is) to ``path``; the decoded answer. The two
        writes a node scan makes a thousand times each (an audit Job, a report's status) go this
        way: the client's typed methods validate the dict and rebuild it as models first, which
        cost a sixth of the operator's CPU in a scan of 1,000 nodes."""
        method, url, headers, _body, post = self.api.param_serialize(
            method,
            path,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        try:
            # the REST client encodes a dict body as JSON (for a JSON content type) as it is
            response = self.api.call_api(method, url, header_params=headers, body=body, post_params=post)
            response.read()  # type: ignore[no-untyped-call]  # RESTResponse.read is not annotated
            data = self.api.response_deserialize(response, {"200": "object", "201": "object"}).data
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(data)

    def _get(self, path: str, query: list[tuple[str, Any]]) -> dict[str, Any]:
        """GET ``path`` and decode the JSON body; API failures become :class:`KubeError`."""
        method, url, headers, body, post = self.api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, body=body, post_params=post)
            response.read()  # type: ignore[no-untyped-call]  # RESTResponse.read is not annotated
            data = self.api.response_deserialize(response, {"200": "object"}).data
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(data)

    def annotate(self, plural: str, name: str, annotations: Mapping[str, str]) -> None:
        """Merge ``annotations`` into a cluster-scoped object's metadata (a user action, e.g. a rescan)."""
        self._count(f"annotate {plural}")
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            self.custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, body)
        except ApiException as exc:
            raise _error(exc) from exc

    def delete_object(self, plural: str, name: str, namespace: str | None = None) -> None:
        self._count(f"delete {plural}")
        try:
            if namespace is None:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    # ---- other groups' custom objects (PolicyReports, OpenReports) ---------------------------
    def served_versions(self) -> set[str]:
        """Every ``group/version`` the API server serves (API discovery)."""
        try:
            groups = client.ApisApi(self.api).get_api_versions().groups or []
        except ApiException as exc:
            raise _error(exc) from exc
        return {v.group_version for g in groups for v in (g.versions or [])}

    def get_custom(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        try:
            if namespace is None:
                res = self.custom.get_cluster_custom_object(group, version, plural, name)
            else:
                res = self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(res)

    def list_custom(
        self, group: str, version: str, plural: str, labels: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``plural`` in every namespace (or cluster-scoped ones)."""
        try:
            res = self.custom.list_cluster_custom_object(group, version, plural, label_selector=labels)
        except ApiException as exc:
            raise _error(exc) from exc
        return list(cast("Mapping[str, Any]", res).get("items", []))

    def put_custom(self, group: str, version: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create ``body`` or replace the object of its name (namespaced when ``metadata.namespace``)."""
        meta = body["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        try:
            current = self.get_custom(group, version, plural, name, namespace)
        except NotFoundError:
            current = None
        try:
            if current is None:
                self._count(f"create {plural}")
                if namespace is None:
                    res = self.custom.create_cluster_custom_object(group, version, plural, body)
                else:
                    res = self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
            else:
                self._count(f"update {plural}")
                body = {
                    **body,
                    "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]},
                }
                if namespace is None:
                    res = self.custom.replace_cluster_custom_object(group, version, plural, name, body)
                else:
                    res = self.custom.replace_namespaced_custom_object(
                        group, version, namespace, plural, name, body
                    )
        except ApiException as exc:
            raise _error(exc) from exc
        return _as_dict(res)

    def delete_custom(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> None:
        self._count(f"delete {plural}")
        try:
            if namespace is None:
                self.custom.delete_cluster_custom_object(group, version, plural, name)
            else:
                self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    # ---- core objects ------------------------------------------------------------------------
    def allowed(self, verb: str, group: str, resource: str, namespace: str | None = None) -> bool:
        """Whether the API server lets this client ``verb`` the ``resource`` (``jobs``, ``pods/status``)."""
        plural, _, subresource = resource.partition("/")
        attributes: dict[str, str] = {"verb": verb, "group": group, "resource": plural}
        if subresource:
            attributes["subresource"] = subresource
        if namespace:
            attributes["namespace"] = namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        try:
            res = self.authz.create_self_subject_access_review(review)  # type: ignore[arg-type]  # dict body
        except ApiException as exc:
            raise _error(exc) from exc
        return res.status is not None and bool(res.status.allowed)

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap, or None when there is none of that name."""
        try:
            cm = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc) from exc
        return dict(cm.data or {})

    def whoami(self) -> str:
        """The user name the API server knows this client as (SelfSubjectReview), or "unknown"."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            res = self.authn.create_self_subject_review(review)  # type: ignore[arg-type]  # dict body
        except ApiException:
            return "unknown"
        info = res.status.user_info if res.status else None
        return str(info.username) if info and info.username else "unknown"

    def server_version(self) -> str:
        try:
            return str(self.version_api.get_code().git_version)
        except ApiException as exc:
            raise _error(exc) from exc

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        self._count("create jobs")
        self._send("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body, "application/json")

    def delete_job(self, namespace: str, name: str) -> None:
        self._count("delete jobs")
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    def delete_jobs(self, namespace: str, labels: str) -> None:
        """Delete every Job matching the label selector in one request (their Pods go with them)."""
        self._count("delete jobs")
        try:
            self.batch.delete_collection_namespaced_job(
                namespace, label_selector=labels, propagation_policy="Background"
            )
        except ApiException as exc:
            raise _error(exc) from exc

    # ---- leader election ---------------------------------------------------------------------
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as the API server sends it (``None`` when there is none)."""
        try:
            res = self.coordination.read_namespaced_lease(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc) from exc
        return _raw(res)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("create leases")
        try:
            res = self.coordination.create_namespaced_lease(namespace, body, _preload_content=False)  # type: ignore[arg-type]  # dict body
        except ApiException as exc:
            raise _error(exc) from exc
        return _raw(res)

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease; ``metadata.resourceVersion`` makes a concurrent change a ConflictError."""
        self._count("update leases")
        try:
            res = self.coordination.replace_namespaced_lease(
                body["metadata"]["name"],
                namespace,
                body,  # type: ignore[arg-type]  # dict body
                _preload_content=False,
            )
        except ApiException as exc:
            raise _error(exc) from exc
        return _raw(res)

    def post_event(
        self,
        involved: Mapping[str, str],
        *,
        type_: str,
        reason: str,
        message: str,
        namespace: str = "default",
    ) -> None:
        """Post a core/v1 Event about ``involved`` (kind, name, uid, apiVersion[, namespace])."""
        self._count("create events")
        now = datetime.now(UTC)
        ns = involved.get("namespace") or namespace
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name'][:200]}.", "namespace": ns},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": "plumbob"},
            "reportingComponent": "plumbob.dev/operator",
            "reportingInstance": os.environ.get("HOSTNAME", "plumbob"),
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(ns, body)  # type: ignore[arg-type]  # validate_call coerces the dict
        except ApiException as exc:
            raise _error(exc) from exc
