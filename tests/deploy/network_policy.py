"""A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), enough to
ask "may pod A reach pod B on port P" of the rendered policies of k8s/platform.

Rules implemented: a pod is isolated for a direction once any policy of its namespace selects
it with that policy type; then traffic is allowed if some rule of some selecting policy matches
the peer (podSelector in the policy's namespace, namespaceSelector, both, or ipBlock) and the
port. Traffic needs both the source's egress and the destination's ingress to allow it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace, its labels, its namespace's labels, an IP) or an outside address."""

    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    ip: str = "10.0.0.1"


def outside(ip: str) -> Endpoint:
    """An address outside the Kubernetes cluster (no pod: only ipBlock peers match it)."""
    return Endpoint(namespace=None, ip=ip)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) applied to ``labels``; {} selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if other.namespace is None:  # an outside address matches ipBlock peers only
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), other.labels) if "podSelector" in peer else True


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        low = entry.get("port")
        high = entry.get("endPort", low)
        if low is None or low <= port <= high:
            return True
    return False


def _direction_allows(
    policies: list[dict[str, Any]],
    pod: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
    kind: str,
) -> bool:
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == pod.namespace
        and selects(p["spec"].get("podSelector"), pod.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            namespace = policy["metadata"]["namespace"]
            if (not peers or any(peer_matches(p, namespace, other) for p in peers)) and (
                port_matches(rule.get("ports"), port, protocol)
            ):
                return True
    return False


def allowed(
    policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether ``src`` may open a connection to ``dst`` on ``port``."""
    docs = [p for p in policies if p.get("kind") == "NetworkPolicy"]
    egress = src.namespace is None or _direction_allows(docs, src, dst, port, protocol, "Egress")
    ingress = dst.namespace is None or _direction_allows(docs, dst, src, port, protocol, "Ingress")
    return egress and ingress
