"""Exit codes and the errors that map to them.

0 every check passed, 1 a check failed, 2 bad usage or input, 3 could not run
(no nameserver answered, the deadline passed before anything was learned, a store could not be
read or written), 4 the Kubernetes API was required (--api on) but could not be used, 5 nothing to check (check --all),
130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
CANNOT_RUN = 3
API_UNAVAILABLE = 4
NOTHING_TO_CHECK = 5  # --all / --selector / -A selected no StatefulSet: not a pass
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
TERMINATED = 143  # 128 + SIGTERM


class SsdnsError(Exception):
    """An error the user can act on: printed as one line, never a traceback."""

    exit_code = CANNOT_RUN


class UsageError(SsdnsError):
    exit_code = USAGE


class CannotRun(SsdnsError):
    exit_code = CANNOT_RUN


class ApiUnavailable(SsdnsError):
    exit_code = API_UNAVAILABLE


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived mid-run: the run stops, says so in one line, exits 130 or 143.
    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.exit_code = INTERRUPTED if signum == signal.SIGINT else TERMINATED
        super().__init__(f"interrupted by {signal.Signals(signum).name}: the run stopped before it finished")


# What an API failure means, and what to do about it: said in one place (ApiError.__str__).
FORBIDDEN, UNAUTHORIZED, NOT_FOUND, CONFLICT, SERVER, REJECTED = \
    "forbidden", "unauthorized", "not-found", "conflict", "server", "rejected"
UNREACHABLE, TIMEOUT, TLS, BAD_ANSWER = "unreachable", "timeout", "tls", "bad-answer"
# The API as a whole cannot be used: no other read would fare better (401: no credential is accepted).
TRANSPORT = frozenset({UNREACHABLE, TIMEOUT, TLS, BAD_ANSWER, UNAUTHORIZED})

_KINDS = {"statefulsets": "StatefulSet", "services": "Service", "pods": "pod", "configmaps": "ConfigMap",
          "endpointslices": "EndpointSlice", "persistentvolumeclaims": "PVC", "statefulsets/scale": "StatefulSet",
          "endpoints": "Endpoints object"}


def kind_of_status(status: int) -> str:
    if status == 401:
        return UNAUTHORIZED
    if status == 403:
        return FORBIDDEN
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status >= 500:
        return SERVER
    return REJECTED


class ApiError(ApiUnavailable):
    """One Kubernetes API call that did not give what was asked: which call (verb, resource, object),
    how it failed (kind, HTTP status, the server's reason) and so what to do. kube.py is the only
    place that sees the client's exceptions; everything else sees this."""

    def __init__(self, kind: str, verb: str, resource: str, *, status: int | None = None, reason: str = "",
                 name: str | None = None, namespace: str | None = None, server: str = ""):
        self.kind, self.verb, self.resource, self.status = kind, verb, resource, status
        self.reason = " ".join(str(reason).split())[:300]
        self.name, self.namespace, self.server = name, namespace, server
        super().__init__(self.describe())

    @property
    def transport(self) -> bool:
        """True when the API as a whole could not be used (not one refused read)."""
        return self.kind in TRANSPORT

    @property
    def call(self) -> str:
        what = f"{self.resource} {self.name}" if self.name else self.resource
        return f"{self.verb} {what}" + (f" in namespace {self.namespace}" if self.namespace else "")

    def describe(self) -> str:
        http = f"HTTP {self.status}" + (f": {self.reason}" if self.reason else "")
        at = f" at {self.server}" if self.server else ""
        if self.kind == FORBIDDEN:
            return (f"cannot {self.call} ({http}): grant verb {self.verb!r} on {self.resource!r} to ssdns's "
                    "ServiceAccount (k8s/rbac.yaml)")
        if self.kind == UNAUTHORIZED:
            return (f"cannot {self.call} ({http}): the API server{at} does not accept the credentials; check the "
                    "token or client certificate of --kubeconfig/--context (or the pod's service account)")
        if self.kind == NOT_FOUND:
            kind = _KINDS.get(self.resource, self.resource)
            if self.name:
                where = f"{self.namespace}/{self.name}" if self.namespace else self.name
                return f"{kind} {where} does not exist (HTTP 404): check the name and --namespace"
            return f"cannot {self.call} (HTTP 404): the API server{at} does not serve {self.resource}"
        if self.kind == CONFLICT:
            return f"cannot {self.call} ({http}): it changed or exists already; run again"
        if self.kind == SERVER:
            return f"cannot {self.call} ({http}): the API server{at} failed; try again, or check the API server"
        if self.kind == REJECTED:
            return f"cannot {self.call} ({http})"
        if self.kind == UNREACHABLE:
            return (f"cannot {self.call}: the Kubernetes API{at} is unreachable ({self.reason}); check "
                    "--kubeconfig/--context and the network")
        if self.kind == TIMEOUT:
            return (f"cannot {self.call}: the Kubernetes API{at} did not answer in time ({self.reason}); check it, "
                    "or raise --timeout")
        if self.kind == TLS:
            return (f"cannot {self.call}: TLS with the Kubernetes API{at} failed ({self.reason}); give the "
                    "cluster's CA (certificate-authority in the kubeconfig; in a pod, the service account's ca.crt)")
        return (f"cannot {self.call}: the answer{at} is not what a Kubernetes API sends ({self.reason}); check "
                "that --kubeconfig/--context point at the API server")
