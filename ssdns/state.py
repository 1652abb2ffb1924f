"""Where snapshots live between runs: a file, or a ConfigMap. Writes never lose data.

A file is replaced atomically (temp file, fsync, rename) under an exclusive lock on PATH.lock (an
empty file kept beside it: deleting it while no run is going is harmless), re-read inside the lock,
so two overlapping runs both land in the history. Waiting for the lock takes its bound from the
run's deadline. A ConfigMap is replaced with its resourceVersion and retried on 409 Conflict,
re-reading and merging each time, each call bounded by the deadline. A state that does not parse
(not UTF-8, not JSON, JSON null, a snapshot missing a key), or that belongs to another target, is
reported and left untouched: only a state that does not exist yet is started afresh.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ssdns.checks.history import compare_snapshots, store_failed
from ssdns.errors import CANNOT_RUN, USAGE, ApiError, ApiUnavailable, SsdnsError, UsageError
from ssdns.files import not_a_file
from ssdns.identity import STATE_SCHEMA, changes, snapshot
from ssdns.model import Result, Status, StoreSummary

if TYPE_CHECKING:
    from ssdns.kube import Api

DATA_KEY = "state.json"
CONFLICT_RETRIES = 8
MAX_BYTES = 900_000  # a ConfigMap holds at most 1 MiB; trim the oldest snapshots to stay under
# A state file is read at most this far: every state ssdns writes is trimmed under MAX_BYTES, so a far larger
# file is none of them (a log given by mistake), and reading it whole could exhaust a CronJob pod's memory.
READ_CAP = 16 << 20
LOCK_POLL = 0.05  # seconds between tries for a held lock


class StateError(SsdnsError):
    """The stored state cannot be used (corrupt, foreign); it is left as it is."""

    exit_code = USAGE


class StateUnreachable(StateError):
    """The store could not be read or written (API unreachable or refusing, disk error, lock held)."""

    exit_code = CANNOT_RUN


def new_doc(target_key: dict) -> dict:
    return {"schema": STATE_SCHEMA, "target": target_key, "history": []}


_UNTOUCHED = "left untouched; move it away or pick another --state to start a new history"


def parse_doc(data: bytes | str, where: str) -> dict:
    """The stored bytes as a state document, or a StateError: JSON null is a state, just not ours."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{where} is not UTF-8 text (byte {exc.start}): {_UNTOUCHED}") from None
    try:
        doc = json.loads(data)
    except ValueError:
        raise StateError(f"{where} is not valid JSON: {_UNTOUCHED}") from None
    except RecursionError:
        raise StateError(f"{where} nests too deeply to be an ssdns state: {_UNTOUCHED}") from None
    if not isinstance(doc, dict):
        raise StateError(f"{where} holds JSON {_json_type(doc)}, not an ssdns state ({STATE_SCHEMA}): {_UNTOUCHED}")
    return doc


def _json_type(value) -> str:
    return {type(None): "null", bool: "true/false", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


# What every stored snapshot holds, as identity.py and the history timeline read it.
_SNAPSHOT: dict[str, type | tuple[type, ...]] = {"taken_at": str, "ok": bool, "pods": dict}
_POD: dict[str, type | tuple[type, ...]] = {"name": str, "uid": (str, type(None)), "ips": list, "dns_ips": list, "node": (str, type(None)),
        "identity": (str, type(None)), "volumes": dict, "seen_at": str}


def _snapshot_problem(snap) -> str | None:
    if not isinstance(snap, dict):
        return f"is {_json_type(snap)}, not an object"
    problem = _fields_problem(snap, _SNAPSHOT, "")
    if problem:
        return problem
    if not isinstance(snap.get("service_ips", []), list) or not isinstance(snap.get("replicas"), (int, type(None))):
        return "has a 'service_ips' or 'replicas' of the wrong type"
    for ordinal, pod in snap["pods"].items():
        problem = _pod_problem(ordinal, pod)
        if problem:
            return problem
    ch = snap.get("changes", {})
    if not isinstance(ch, dict) or not all(_strings(words) for words in ch.values()):
        return "has 'changes' of the wrong shape"
    if not _strings(snap.get("broken", [])):
        return "has 'broken' of the wrong shape"
    return None


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _fields_problem(obj: dict, fields: dict[str, type | tuple[type, ...]], who: str) -> str | None:
    for key, kind in fields.items():
        if key not in obj:
            return f"{who}has no {key!r}"
        if not isinstance(obj[key], kind):
            return f"{who}has a {key!r} of the wrong type"
    return None


def _pod_problem(ordinal: str, pod) -> str | None:
    if not (ordinal.isascii() and ordinal.isdigit()) or not isinstance(pod, dict):
        return f"has a pod {ordinal!r} that is not an ordinal with an object"
    problem = _fields_problem(pod, _POD, f"pod {ordinal} ")
    if problem:
        return problem
    if not _strings(pod["ips"]) or not _strings(pod["dns_ips"]) or \
            not all(isinstance(v, (str, type(None))) for v in pod["volumes"].values()):
        return f"pod {ordinal} has an IP or a volume that is not a string"
    return None


_NUMBER = (int, float, type(None))


def _event_ok(e) -> bool:
    """An ssdns watch convergence event with what the history timeline reads from it."""
    if not isinstance(e, dict) or not isinstance(e.get("seen_at"), str) or not isinstance(e.get("pod"), str):
        return False
    stages, wrong = e.get("stages", {}), e.get("still_wrong", [])
    return (isinstance(stages, dict) and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in stages.values())
            and isinstance(wrong, list) and all(isinstance(w, str) for w in wrong)
            and all(isinstance(e.get(k), _NUMBER) and not isinstance(e.get(k), bool)
                    for k in ("nxdomain_window", "elapsed", "wrong"))
            and all(isinstance(e.get(k, ""), str) for k in ("cause", "outcome")))


FLEET_SCHEMA = "ssdns.fleet-state/v1"  # check --all's state (fleet_state.py): one of these per StatefulSet
# What to do with one StatefulSet's entry there that cannot be used: moving the whole store away would drop
# every other StatefulSet's history.
ENTRY_UNTOUCHED = ("left untouched; delete this entry from the state to start its history afresh (the other "
                   "StatefulSets' are kept)")


def validate(doc, target_key: dict | None, where: str, untouched: str = _UNTOUCHED) -> dict:
    """The document, if it is an ssdns state (for target_key, when given) whose every snapshot has
    what is read from it; else a StateError naming the first problem (and `untouched`: what to do)."""
    if isinstance(doc, dict) and doc.get("schema") == FLEET_SCHEMA:
        raise StateError(f"{where} is the state of check --all/--selector/-A ({FLEET_SCHEMA}), one history per "
                         "StatefulSet: left untouched; use it with check --all, or pick another --state for one "
                         "StatefulSet")
    if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA or not isinstance(doc.get("history"), list):
        raise StateError(f"{where} is not an ssdns state ({STATE_SCHEMA}): {untouched}")
    if not isinstance(doc.get("target"), dict):
        raise StateError(f"{where} has no target: {untouched}")
    for i, snap in enumerate(doc["history"]):
        problem = _snapshot_problem(snap)
        if problem:
            raise StateError(f"{where}: snapshot {i + 1} of {len(doc['history'])} {problem}: {untouched}")
    events = doc.get("events", [])
    if not isinstance(events, list) or not all(_event_ok(e) for e in events):
        raise StateError(f"{where} has 'events' of the wrong shape: {untouched}")
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
    def __init__(self, path: str, deadline: float | None = None):
        self.path = Path(path)
        self.where = f"state file {self.path}"
        self.deadline = deadline  # time.monotonic() by which a held lock stops being waited for

    def load(self) -> dict | None:
        if kind := not_a_file(self.path):  # read, a FIFO blocks for ever and /dev/zero never ends
            raise StateUnreachable(f"{self.where} is {kind}, not a file: left untouched; give --state a file path")
        try:
            with self.path.open("rb") as f:
                data = f.read(READ_CAP + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateUnreachable(f"cannot read {self.where}: {exc.strerror}") from None
        if len(data) > READ_CAP:
            raise StateError(f"{self.where} is larger than {READ_CAP >> 20} MiB, and every state ssdns writes is "
                             f"under 1 MiB: is it the right file? {_UNTOUCHED}")
        return parse_doc(data, self.where)

    def _lock(self, lock) -> None:
        """Take the lock, waiting at most until the deadline (overlapping runs take turns)."""
        import fcntl

        started = time.monotonic()
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                left = float("inf") if self.deadline is None else self.deadline - time.monotonic()
                if left <= 0:
                    raise StateUnreachable(
                        f"cannot write {self.where}: another process holds its lock {lock.name} (waited "
                        f"{time.monotonic() - started:.1f} s, until the deadline); not saved") from None
                time.sleep(min(LOCK_POLL, left))

    def update(self, merge: Callable[[dict | None], dict]) -> dict:
        lock_path = str(self.path) + ".lock"
        if kind := not_a_file(lock_path):  # opened for writing, a FIFO blocks for ever (no reader)
            raise StateUnreachable(f"cannot write {self.where}: its lock {lock_path} is {kind}, not a file; remove "
                                   "it (ssdns makes an empty file there)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NONBLOCK: a FIFO put there since the look above fails at once (ENXIO) instead of blocking
            lock = open(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644), "a")
        except OSError as exc:
            raise StateUnreachable(f"cannot write {self.where}: {exc.strerror}") from None
        with lock:
            self._lock(lock)  # each run re-reads inside the lock
            doc = merge(self.load())
            try:
                target = Path(os.path.realpath(self.path))  # a symlink stays one: its target is replaced
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            except OSError as exc:
                raise StateUnreachable(f"cannot write {self.where}: {exc.strerror}") from None
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(doc, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise StateUnreachable(f"cannot write {self.where}: {exc.strerror}") from None
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return doc


class ConfigMapStore:
    def __init__(self, name: str, namespace: str, api_opts, deadline: float | None = None):
        self.name, self.namespace, self.api_opts = name, namespace, api_opts
        self.where = f"ConfigMap {namespace}/{name}"
        self.deadline = deadline  # time.monotonic() bounding every API call
        self._client: Api | None = None

    def _call(self, method: str, verb: str, path: str = "", body: dict | None = None) -> dict:
        from ssdns import kube

        if self._client is None:
            try:
                kube.import_client(self.api_opts)  # local work: not counted against the calls' time
                self._client = kube.api_client(self.api_opts, self.deadline)
            except ApiUnavailable as exc:  # credentials: the store is unreachable, like a refused read
                raise StateUnreachable(f"cannot read {self.where}: {exc}") from None
        return kube.request(self._client, method, f"/api/v1/namespaces/{self.namespace}/configmaps{path}",
                            verb=verb, resource="configmaps", name=self.name, namespace=self.namespace, body=body)

    def _read(self):
        """(doc or None, resourceVersion or None) from the ConfigMap; None, None when it does not exist."""
        try:
            cm = self._call("GET", "get", f"/{self.name}")
        except ApiError as exc:
            if exc.status == 404:
                return None, None
            raise StateUnreachable(f"cannot read {self.where}: {exc}") from None
        from ssdns import kube

        try:  # another kind or another object is not "a ConfigMap that is not ssdns's": the API sent something else
            kube.shaped(dict, cm, "get", "configmaps", self._client, self.name, self.namespace)
        except ApiError as exc:
            raise StateUnreachable(f"cannot read {self.where}: {exc}") from None
        data = cm.get("data")
        text = data.get(DATA_KEY) if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise StateError(f"{self.where} exists but has no {DATA_KEY!r}: it is not ssdns's; left untouched")
        meta = cm.get("metadata")
        return parse_doc(text, f"{self.where} {DATA_KEY!r}"), meta.get("resourceVersion") if isinstance(meta, dict) else None

    def load(self) -> dict | None:
        return self._read()[0]

    def update(self, merge: Callable[[dict | None], dict]) -> dict:
        for attempt in range(CONFLICT_RETRIES):
            current, version = self._read()
            doc = merge(current)
            meta = {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "ssdns"}}
            if version is not None:
                meta["resourceVersion"] = version  # optimistic concurrency: 409 if someone wrote since
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {DATA_KEY: json.dumps(doc)}}
            try:
                if version is None:
                    self._call("POST", "create", body=body)
                else:
                    self._call("PUT", "update", f"/{self.name}", body=body)
                return doc
            except ApiError as exc:
                if exc.status == 409 and self._time_left() > 0:  # someone wrote in between: re-read, merge again
                    time.sleep(min(0.05 * 2 ** attempt, 1.0, self._time_left()) * random.uniform(0.5, 1.0))
                    continue
                raise StateUnreachable(f"cannot write {self.where}: {exc}") from None
        raise StateUnreachable(f"{self.where} kept changing under us ({CONFLICT_RETRIES} conflicts); not saved")

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()


def open_store(spec: str, namespace: str, api_opts, deadline: float | None = None):
    """The store --state names; deadline (time.monotonic()) bounds its lock waits and API calls."""
    if spec.startswith("configmap:"):
        name = spec.split(":", 1)[1]
        from ssdns.target import check_label

        if not name or len(name) > 253 or not all(check_label(part, "ConfigMap name") for part in name.split(".")):
            raise UsageError(f"--state {spec!r}: give configmap:NAME")
        return ConfigMapStore(name, namespace, api_opts, deadline)
    if not spec.strip():
        raise UsageError("--state needs a file path or configmap:NAME (an empty --state would keep no state)")
    if spec.endswith(("/", os.sep)) or os.path.isdir(spec):
        raise UsageError(f"--state {spec!r} is a directory: give a file path in it, e.g. {os.path.join(spec, 'ssdns-state.json')}")
    if kind := not_a_file(spec):
        raise UsageError(f"--state {spec!r} is {kind}, not a file: give the path of a file (it is created when missing)")
    return FileStore(spec, deadline)


def record_events(store, key: dict, events: list[dict], keep: int = 200) -> dict:
    """Add ssdns watch's convergence events to the state's `events` (the newest `keep`), merging as
    apply_state does; the snapshots are left as they are."""

    def merge(latest: dict | None) -> dict:
        base = new_doc(key) if latest is None else validate(latest, key, store.where)
        return dict(base, events=[*base.get("events", []), *events][-keep:])

    return store.update(merge)


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
    found: list = []
    if prev is not None:
        found = compare_snapshots(prev, cur)
        cur["changes"] = changes(prev, cur)
        cur["broken"] = [f.subject for f in found if f.status is Status.FAIL]

    def merge(latest: dict | None) -> dict:
        base = new_doc(key) if latest is None else validate(latest, key, store.where)
        return append(base, cur, keep)

    try:
        saved = store.update(merge)
    except SsdnsError as exc:
        return result.adding([*found, store_failed(store.where, exc)])
    # The first-run note only once the snapshot is saved: a failed write starts nothing.
    notes = [] if prev is not None else [f"first run with {store.where}: identity is compared from the next run on"]
    return result.adding(found, notes, StoreSummary(store.where, len(saved["history"]), keep))
