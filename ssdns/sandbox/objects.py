"""The World as the official client's model objects (kubernetes.client.V1Pod, ...): what a real API
server would answer for it, names and shapes included.

The client module is handed in (Models(world, client)) rather than imported here, so that importing
this module does not load kubernetes: only KubeApi.start() does."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

from ssdns.sandbox.world import DNS_NAMESPACE, DNS_SERVICE, SERVICE_NAME_LABEL, World, endpoints, statefulset_status

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
REVISION_LABEL = "controller-revision-hash"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_ENDPOINTS = 1000  # the Endpoints controller's cap (maxCapacity)


class Rfc3339(datetime):
    """A datetime that serializes as the API server writes times: 2024-01-02T03:04:05Z."""

    def isoformat(self, *args, **kw) -> str:
        return super().isoformat(*args, **kw).replace("+00:00", "Z")


def ts(dt: datetime | None) -> Rfc3339 | None:
    if dt is None:
        return None
    dt = dt.astimezone(timezone.utc)
    return Rfc3339(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, tzinfo=timezone.utc)



class Models:
    """`Models(world, kubernetes.client)`; one method per resource (pods, services, ...), named as
    its plural, turning one World object into its model; scale() is statefulsets/scale."""

    def __init__(self, world: World, client):
        self.world = world
        self.k = client

    def _meta(self, obj, name: str, **kw):
        return self.k.V1ObjectMeta(name=name, namespace=self.world.namespace, uid=obj.uid,
                                    resource_version=str(obj.resource_version),
                                    creation_timestamp=ts(obj.created), **kw)

    def _owner_sts(self):
        w = self.world
        return [self.k.V1OwnerReference(api_version="apps/v1", kind="StatefulSet", name=w.statefulset,
                                         uid=w.sts.uid, controller=True, block_owner_deletion=True)]

    def _container(self):
        k, w = self.k, self.world
        return k.V1Container(
            name="nginx", image=IMAGE, image_pull_policy="IfNotPresent",
            args=["serve-hostname", "--http", "--port", str(w.port)],
            ports=[k.V1ContainerPort(name=w.port_name or "http", container_port=w.port, protocol="TCP")],
            readiness_probe=k.V1Probe(http_get=k.V1HTTPGetAction(path="/", port=w.port, scheme="HTTP"),
                                      period_seconds=10, timeout_seconds=1, success_threshold=1,
                                      failure_threshold=3),
            volume_mounts=[k.V1VolumeMount(name=w.sts.claim_template, mount_path="/usr/share/nginx/html")],
            termination_message_path="/dev/termination-log", termination_message_policy="File")

    def revision(self) -> str:
        """The StatefulSet's current revision: a hash of its template, as ControllerRevisions are named."""
        w = self.world
        return f"{w.statefulset}-{zlib.crc32(f'{w.port}/{w.port_name}/{w.app}'.encode()):08x}"[:63]

    def _containers(self):
        main = self._container()
        if not self.world.sts.sidecar:
            return [main]
        return [main, self.k.V1Container(name="istio-proxy", image="docker.io/istio/proxyv2:1.24.0",
                                         args=["proxy", "sidecar"])]

    def pods(self, p):
        k, w = self.k, self.world
        cond = "True" if p.ready else "False"
        started = ts(p.created)
        node_ip = f"127.54.1.{int(p.node.rpartition('-')[2]) + 1}" if p.node.rpartition("-")[2].isdigit() else None
        labels = {**p.labels, REVISION_LABEL: p.revision or self.revision()}
        meta = self._meta(p, p.name, generate_name=f"{w.statefulset}-", labels=labels,
                          owner_references=self._owner_sts())
        if p.terminating:
            meta.deletion_timestamp, meta.deletion_grace_period_seconds = ts(p.deleted_at or p.ready_changed), 30
        running = p.phase == "Running"
        if running:
            status = k.V1ContainerStatus(
                name="nginx", image=IMAGE, image_id=f"{IMAGE}@sha256:{'0' * 64}", ready=p.ready,
                restart_count=p.restart_count, started=True,
                container_id=f"containerd://{p.uid.replace('-', '')}{'0' * 32}",
                state=k.V1ContainerState(running=k.V1ContainerStateRunning(started_at=started)))
        else:  # Pending: the container is being created, the pod has no IP yet
            status = k.V1ContainerStatus(
                name="nginx", image=IMAGE, image_id="", ready=False, restart_count=0, started=False,
                state=k.V1ContainerState(waiting=k.V1ContainerStateWaiting(reason="ContainerCreating")))
        ip = p.ip if running or p.phase in ("Succeeded", "Failed") else None
        return k.V1Pod(
            api_version="v1", kind="Pod", metadata=meta,
            spec=k.V1PodSpec(
                containers=self._containers(), hostname=p.hostname or None, subdomain=p.subdomain or None,
                host_network=True if w.sts.host_network else None,
                node_name=p.node or None, restart_policy="Always", dns_policy="ClusterFirst",
                service_account_name="default", scheduler_name="default-scheduler",
                termination_grace_period_seconds=30,
                volumes=[k.V1Volume(name=w.sts.claim_template, persistent_volume_claim=k.V1PersistentVolumeClaimVolumeSource(
                    claim_name=w.pvc_name(p.name)))]),
            status=k.V1PodStatus(
                phase=p.phase, pod_ip=ip or None, pod_ips=[k.V1PodIP(ip=ip)] if ip else None,
                host_ip=node_ip, host_ips=[k.V1HostIP(ip=node_ip)] if node_ip else None,
                start_time=started, qos_class="BestEffort",
                conditions=[
                    k.V1PodCondition(type="PodReadyToStartContainers", status="True" if running else "False",
                                     last_transition_time=started),
                    k.V1PodCondition(type="Initialized", status="True", last_transition_time=started),
                    k.V1PodCondition(type="Ready", status=cond, last_transition_time=ts(p.ready_changed)),
                    k.V1PodCondition(type="ContainersReady", status=cond, last_transition_time=ts(p.ready_changed)),
                    k.V1PodCondition(type="PodScheduled", status="True", last_transition_time=started)],
                container_statuses=[status]))

    def services(self, s):
        k, w = self.k, self.world
        ports = [k.V1ServicePort(name=w.port_name or None, port=w.port, target_port=w.port,
                                 protocol=w.proto.upper())]
        return k.V1Service(
            api_version="v1", kind="Service", metadata=self._meta(s, s.name, labels=dict(s.labels) or None),
            spec=k.V1ServiceSpec(
                cluster_ip=s.cluster_ip or "None", cluster_ips=[s.cluster_ip or "None"], type="ClusterIP",
                selector=dict(s.selector) or None, ports=ports,
                publish_not_ready_addresses=True if s.publish_not_ready else None,
                session_affinity="None", ip_families=["IPv4"], ip_family_policy="SingleStack",
                internal_traffic_policy="Cluster"),
            status=k.V1ServiceStatus(load_balancer=k.V1LoadBalancerStatus()))

    def persistentvolumeclaims(self, c):
        k = self.k
        bound = c.phase == "Bound" and c.volume_name
        annotations = {"volume.kubernetes.io/selected-node": self._node_of(c.pod)} if self._node_of(c.pod) else {}
        if bound:
            annotations.update({"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"})
        return k.V1PersistentVolumeClaim(
            api_version="v1", kind="PersistentVolumeClaim",
            metadata=self._meta(c, c.name, labels=dict(c.labels) or None, annotations=annotations or None,
                                finalizers=["kubernetes.io/pvc-protection"]),
            spec=k.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"], storage_class_name=c.storage_class, volume_mode="Filesystem",
                resources=k.V1VolumeResourceRequirements(requests={"storage": c.storage}),
                volume_name=c.volume_name or None),
            status=k.V1PersistentVolumeClaimStatus(
                phase=c.phase, access_modes=["ReadWriteOnce"] if bound else None,
                capacity={"storage": c.storage} if bound else None))

    def _node_of(self, pod: str) -> str | None:
        try:
            return self.world.pod(pod).node or None
        except KeyError:
            return None

    def configmaps(self, cm):
        return self.k.V1ConfigMap(
            api_version="v1", kind="ConfigMap",
            metadata=self._meta(cm, cm.name, labels=dict(cm.labels) or None, annotations=dict(cm.annotations) or None),
            data=dict(cm.data) or None, binary_data=dict(cm.binary_data) or None)

    def statefulsets(self, sts):
        k, w = self.k, self.world
        replicas, ready, available = statefulset_status(w)
        template_labels = dict(w.selector)
        revision = self.revision()
        update = sts.update_revision or revision
        updated = sum(1 for p in w.pods if (p.revision or revision) == update)
        claim = k.V1PersistentVolumeClaim(
            api_version="v1", kind="PersistentVolumeClaim", metadata=k.V1ObjectMeta(name=sts.claim_template),
            spec=k.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"], volume_mode="Filesystem",
                resources=k.V1VolumeResourceRequirements(requests={"storage": sts.storage})),
            status=k.V1PersistentVolumeClaimStatus(phase="Pending"))
        return k.V1StatefulSet(
            api_version="apps/v1", kind="StatefulSet",
            metadata=self._meta(sts, w.statefulset, generation=sts.generation, labels=dict(w.selector),
                                annotations=dict(sts.annotations) or None),
            spec=k.V1StatefulSetSpec(
                replicas=sts.replicas, service_name=w.service, selector=k.V1LabelSelector(match_labels=dict(w.selector)),
                pod_management_policy=sts.pod_management_policy, revision_history_limit=10,
                update_strategy=k.V1StatefulSetUpdateStrategy(
                    type="RollingUpdate", rolling_update=k.V1RollingUpdateStatefulSetStrategy(partition=sts.partition)),
                persistent_volume_claim_retention_policy=k.V1StatefulSetPersistentVolumeClaimRetentionPolicy(
                    when_deleted=sts.retain_when_deleted, when_scaled=sts.retain_when_scaled),
                template=k.V1PodTemplateSpec(metadata=k.V1ObjectMeta(labels=template_labels),
                                             spec=k.V1PodSpec(containers=self._containers(),
                                                              host_network=True if sts.host_network else None)),
                volume_claim_templates=[claim]),
            status=k.V1StatefulSetStatus(
                observed_generation=sts.generation, replicas=replicas, ready_replicas=ready or None,
                current_replicas=(replicas - updated if update != revision else replicas) or None,
                updated_replicas=updated or None,
                available_replicas=available, current_revision=revision, update_revision=update,
                collision_count=0))

    def endpointslices(self, item):
        k, w = self.k, self.world
        if item is w.dns_slice:
            return self._dns_slice()
        ident, eps = item
        svc = w.svc
        # endpoint_slices() yields nothing without a Service, so svc is set here
        labels = self.slice_labels()
        owner = [k.V1OwnerReference(api_version="v1", kind="Service", name=svc.name, uid=svc.uid, controller=True,
                                    block_owner_deletion=True)]
        endpoints = [k.V1Endpoint(
            addresses=[e.ip], hostname=e.hostname, node_name=e.node or None,
            conditions=k.V1EndpointConditions(ready=e.ready, serving=e.serving, terminating=e.terminating),
            target_ref=k.V1ObjectReference(kind="Pod", name=e.pod, namespace=w.namespace, uid=e.pod_uid))
            for e in eps]
        return k.V1EndpointSlice(
            api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4",
            metadata=self._meta(ident, ident.name, generate_name=f"{svc.name}-",
                                labels=labels, owner_references=owner),
            endpoints=endpoints or None,
            ports=[k.DiscoveryV1EndpointPort(name=w.port_name or "", port=w.port, protocol=w.proto.upper())])

    def _dns_slice(self):
        """kube-system/kube-dns's EndpointSlice: one endpoint per DNS replica, named by pod and node."""
        k, w = self.k, self.world
        ident = w.dns_slice
        meta = k.V1ObjectMeta(name=ident.name, namespace=DNS_NAMESPACE, uid=ident.uid, generate_name=f"{DNS_SERVICE}-",
                              resource_version=str(ident.resource_version), creation_timestamp=ts(ident.created),
                              labels={SERVICE_NAME_LABEL: DNS_SERVICE, "k8s-app": "kube-dns",
                                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        endpoints = [k.V1Endpoint(
            addresses=[r.ip], node_name=r.node, conditions=k.V1EndpointConditions(ready=True, serving=True,
                                                                                  terminating=False),
            target_ref=k.V1ObjectReference(kind="Pod", name=r.name, namespace=DNS_NAMESPACE, uid=r.uid))
            for r in w.dns_replicas]
        ports = [k.DiscoveryV1EndpointPort(name="dns", port=w.dns_port, protocol="UDP"),
                 k.DiscoveryV1EndpointPort(name="dns-tcp", port=w.dns_port, protocol="TCP"),
                 k.DiscoveryV1EndpointPort(name="metrics", port=9153, protocol="TCP")]
        return k.V1EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4",
                                 metadata=meta, endpoints=endpoints or None, ports=ports)

    def endpoints(self, svc):
        """The v1 Endpoints object of the Service, as the Endpoints controller writes it: at most 1000
        addresses, and the over-capacity annotation when it had to cut (or the fault says so)."""
        k, w = self.k, self.world
        eps = endpoints(w)
        annotations = {OVER_CAPACITY: "truncated"} if len(eps) > MAX_ENDPOINTS or w.over_capacity else None
        eps = eps[:MAX_ENDPOINTS]

        def address(e):
            ref = k.V1ObjectReference(kind="Pod", name=e.pod, namespace=w.namespace, uid=e.pod_uid)
            return k.V1EndpointAddress(ip=e.ip, hostname=e.hostname, node_name=e.node or None, target_ref=ref)

        ready = [address(e) for e in eps if e.ready]
        not_ready = [address(e) for e in eps if not e.ready]
        subsets = [k.V1EndpointSubset(addresses=ready or None, not_ready_addresses=not_ready or None,
                                      ports=[k.CoreV1EndpointPort(name=w.port_name or None, port=w.port,
                                                                  protocol=w.proto.upper())])] if eps else None
        return k.V1Endpoints(api_version="v1", kind="Endpoints",
                             metadata=self._meta(svc, svc.name, labels=dict(svc.labels) or None,
                                                 annotations=annotations),
                             subsets=subsets)

    def slice_labels(self) -> dict[str, str]:
        """The labels of the Service's EndpointSlices (the Service exists)."""
        svc = self.world.svc
        assert svc is not None
        labels = {**svc.labels, SERVICE_NAME_LABEL: svc.name,
                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        if svc.cluster_ip is None:
            labels["service.kubernetes.io/headless"] = ""
        return labels

    def scale(self):
        k, w = self.k, self.world
        replicas, _, _ = statefulset_status(w)
        selector = ",".join(f"{key}={value}" for key, value in sorted(w.selector.items()))
        return k.V1Scale(api_version="autoscaling/v1", kind="Scale",
                         metadata=self._meta(w.sts, w.statefulset),
                         spec=k.V1ScaleSpec(replicas=w.sts.replicas),
                         status=k.V1ScaleStatus(replicas=replicas, selector=selector))
