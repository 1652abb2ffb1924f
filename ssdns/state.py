"""Where snapshots live between runs: a file, or a ConfigMap. Writes never lose data.

A file is replaced atomically (temp file, fsync, rename) under an exclusive lock, re-read inside
the lock, so two overlapping runs both land in the history. A ConfigMap is replaced with its
resourceVersion and retried on 409 Conflict, re-reading and merging each time. A state that does
not parse, or that belongs to another target, is reported and left untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable

from ssdns.errors import CANNOT_RUN, USAGE, SsdnsError, UsageError
from ssdns.checks.history import compare_snapshots, store_failed
from ssdns.identity import STATE_SCHEMA, changes, snapshot
from ssdns.model import Result, Status, StoreSummary

DATA_KEY = "state.json"
CONFLICT_RETRIES = 8
MAX_BYTES = 900_000  # a ConfigMap holds at most 1 MiB; trim the oldest snapshots to stay under


class StateError(SsdnsError):
    """The stored state cannot be used (corrupt, foreign); it is left as it is."""

    exit_code = USAGE


class StateUnreachable(StateError):
    """The store could not be read or written (API unreachable or refusing, disk error)."""

    exit_code = CANNOT_RUN


def new_doc(target_key: dict) -> dict:
    return {"schema": STATE_SCHEMA, "target": target_key, "history": []}


def validate(doc, target_key: dict | None, where: str) -> dict:
    if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA or not isinstance(doc.get("history"), list):
        raise StateError(f"{where} is not an ssdns state ({STATE_SCHEMA}): left untouched; "
                         "move it away or pick another --state to start a new history")
    if target_key is not None and doc.get("target") != target_key:
        raise StateError(f"{where} holds the history of {doc.get('target')}, not {target_key}: left untouched; "
                         "use one --state per target")
    return doc


def append(doc: dict, snap: dict, keep: int) -> dict:
    """The history with `snap` last: at most `keep` snapshots, and the oldest dropped while the whole
    would not fit a ConfigMap (the newest is always kept)."""
    history = [*doc["history"], snap][-keep:]
    sizes = [len(json.dumps(s)) + 2 for s in history]
    total = len(json.dumps(dict(doc, history=[]))) + sum(sizes)
    drop = 0
    while drop < len(history) - 1 and total > MAX_BYTES:
        total -= sizes[drop]
        drop += 1
    return dict(doc, history=history[drop:])


class FileStore:
    def __init__(self, path: str):
        self.path = Path(path)
        self.where = f"state file {self.path}"

    def load(self) -> dict | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateUnreachable(f"cannot read {self.where}: {exc.strerror}") from None
        try:
            return json.loads(text)
        except ValueError:
            raise StateError(f"{self.where} is not valid JSON: left untouched; move it away to start a new history") from None

    def update(self, merge: Callable[[dict | None], dict]) -> dict:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(str(self.path) + ".lock", "a")
        except OSError as exc:
            raise StateUnreachable(f"cannot write {self.where}: {exc.strerror}") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # overlapping runs take turns; each re-reads inside the lock
            doc = merge(self.load())
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(doc, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return doc


class ConfigMapStore:
    def __init__(self, name: str, namespace: str, api_opts):
        self.name, self.namespace, self.api_opts = name, namespace, api_opts
        self.where = f"ConfigMap {namespace}/{name}"
        self._client = None

    def _call(self, method: str, path: str = "", body: dict | None = None) -> dict:
        from ssdns import kube

        if self._client is None:
            self._client = kube.api_client(self.api_opts)
        return kube.request(self._client, method, f"/api/v1/namespaces/{self.namespace}/configmaps{path}",
                            body=body)

    def _read(self):
        """(doc or None, resourceVersion or None) from the ConfigMap; None, None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self._call("GET", f"/{self.name}")
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise StateUnreachable(f"cannot read {self.where} (HTTP {exc.status} {exc.reason}): "
                                   "grant get on configmaps") from None
        except Exception as exc:  # noqa: BLE001 - urllib3: unreachable
            raise StateUnreachable(f"cannot read {self.where}: the Kubernetes API is unreachable "
                                   f"({type(exc).__name__}); check --kubeconfig and --context") from None
        text = (cm.get("data") or {}).get(DATA_KEY)
        if text is None:
            raise StateError(f"{self.where} exists but has no {DATA_KEY!r}: it is not ssdns's; left untouched")
        try:
            return json.loads(text), cm["metadata"].get("resourceVersion")
        except ValueError:
            raise StateError(f"{self.where} {DATA_KEY!r} is not valid JSON: left untouched") from None

    def load(self) -> dict | None:
        return self._read()[0]

    def update(self, merge: Callable[[dict | None], dict]) -> dict:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(CONFLICT_RETRIES):
            current, version = self._read()
            doc = merge(current)
            meta = {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "ssdns"}}
            if version is not None:
                meta["resourceVersion"] = version  # optimistic concurrency: 409 if someone wrote since
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {DATA_KEY: json.dumps(doc)}}
            try:
                if version is None:
                    self._call("POST", body=body)
                else:
                    self._call("PUT", f"/{self.name}", body=body)
                return doc
            except ApiException as exc:
                if exc.status == 409:  # someone wrote in between: re-read, merge again
                    time.sleep(min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.0))
                    continue
                raise StateUnreachable(f"cannot write {self.where} (HTTP {exc.status} {exc.reason}): "
                                       "grant create and update on configmaps") from None
            except Exception as exc:  # noqa: BLE001 - urllib3: unreachable
                raise StateUnreachable(f"cannot write {self.where}: the Kubernetes API is unreachable "
                                       f"({type(exc).__name__})") from None
        raise StateUnreachable(f"{self.where} kept changing under us ({CONFLICT_RETRIES} conflicts); not saved")


def open_store(spec: str, namespace: str, api_opts):
    if spec.startswith("configmap:"):
        name = spec.split(":", 1)[1]
        from ssdns.target import check_label

        if not name or len(name) > 253 or not all(check_label(part, "ConfigMap name") for part in name.split(".")):
            raise UsageError(f"--state {spec!r}: give configmap:NAME")
        return ConfigMapStore(name, namespace, api_opts)
    if not spec:
        raise UsageError("--state needs a file path or configmap:NAME")
    return FileStore(spec)


def target_key(result: Result) -> dict:
    t = result.target
    return {"namespace": t.namespace, "statefulset": t.statefulset, "service": t.service}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def apply_state(result: Result, store, keep: int, taken_at: str | None = None) -> Result:
    """Compare with the last snapshot, save the new one; the result with the identity findings added."""
    key = target_key(result)
    taken_at = taken_at or now()
    try:
        doc = store.load()
        if doc is not None:
            validate(doc, key, store.where)
    except SsdnsError as exc:  # corrupt, foreign, unreachable, no credentials: report, touch nothing
        return result.adding([store_failed(store.where, exc)])
    cur = snapshot(result, taken_at)
    prev = doc["history"][-1] if doc and doc["history"] else None
    found, notes = [], []
    if prev is None:
        notes.append(f"first run with {store.where}: identity is compared from the next run on")
    else:
        found = compare_snapshots(prev, cur)
        cur["changes"] = changes(prev, cur)
        cur["broken"] = [f.subject for f in found if f.status is Status.FAIL]

    def merge(latest: dict | None) -> dict:
        base = new_doc(key) if latest is None else validate(latest, key, store.where)
        return append(base, cur, keep)

    try:
        saved = store.update(merge)
    except SsdnsError as exc:
        return result.adding([*found, store_failed(store.where, exc)], notes)
    return result.adding(found, notes, StoreSummary(store.where, len(saved["history"]), keep))
