//! Whether a forwarded packet is masqueraded, as each kind of mode decides it.

use std::net::IpAddr;

use super::{Decision, Masquerade, MasqueradeModel, ModeProfile, Path, PodDetection, SourceKind};
use crate::endpoint::Endpoint;

/// The decision for a packet taking `path` from `source` to one of `eligible`.
pub(super) fn decide(
    profile: &ModeProfile,
    detect_local: bool,
    path: &Path,
    kind: SourceKind,
    source: Option<IpAddr>,
    eligible: &[&Endpoint],
) -> Masquerade {
    match profile.masquerade {
        MasqueradeModel::Netfilter { masquerade_all } => {
            let rule = LocalRule { on: detect_local, pods: &profile.pods };
            let mut out = netfilter(masquerade_all, &rule, path, kind);
            hairpin(&mut out, source, eligible);
            out
        }
        MasqueradeModel::Relay => {
            masquerade(Decision::Yes, "userspace relay: endpoints see a connection from the node")
        }
        MasqueradeModel::SourceKept => masquerade(
            Decision::No,
            "socket-level balancing rewrites the destination at connect(); the source is never changed",
        ),
        MasqueradeModel::Unknown => masquerade(Decision::Depends, "this mode does not tell"),
    }
}

fn masquerade(decision: Decision, reason: &str) -> Masquerade {
    Masquerade { decision, reasons: vec![reason.to_owned()] }
}

/// kube-proxy's rules: the cluster-IP path masquerades everything with masquerade-all,
/// else what the local-traffic detector does not call a pod; external traffic with policy
/// Cluster is masqueraded, with policy Local it keeps its source, except the node's own
/// traffic, short-circuited and masqueraded.
/// The local-traffic detector in force.
struct LocalRule<'a> {
    /// It recognises some traffic as a pod's.
    on: bool,
    pods: &'a PodDetection,
}

impl LocalRule<'_> {
    /// How the rule names pods, for reasons.
    fn pods(&self) -> String {
        match self.pods {
            PodDetection::ClusterCidrs(_) => "the source is in the cluster CIDR".to_owned(),
            PodDetection::NodeCidrs => "the source is in this node's pod CIDRs".to_owned(),
            PodDetection::Interface(interface) => format!("the packet arrives through {interface}"),
        }
    }
}

fn netfilter(masquerade_all: bool, local: &LocalRule<'_>, path: &Path, kind: SourceKind) -> Masquerade {
    if path.matched_by.is_external() && !path.short_circuit {
        return if path.policy_local {
            masquerade(Decision::No, "externalTrafficPolicy Local keeps the client's address")
        } else {
            masquerade(Decision::Yes, "external traffic with externalTrafficPolicy Cluster is masqueraded")
        };
    }
    if path.short_circuit && kind == SourceKind::Node {
        return masquerade(
            Decision::Yes,
            "the node's own traffic to an external address of a Local-policy service is masqueraded",
        );
    }
    if masquerade_all {
        return masquerade(Decision::Yes, "--masquerade-all masquerades every packet to a cluster IP");
    }
    if !local.on {
        return masquerade(
            Decision::No,
            "no local CIDR (--cluster-cidr, or the Node's podCIDRs with NodeCIDR): local traffic detection is off and cluster-IP traffic keeps its source",
        );
    }
    let pods = local.pods();
    match (kind, local.pods) {
        (SourceKind::Pod, _) => masquerade(Decision::No, &format!("{pods} (a pod): kept")),
        (SourceKind::Unknown, PodDetection::Interface(_)) => {
            masquerade(Decision::Depends, &format!("masqueraded unless {pods} (a pod)"))
        }
        (SourceKind::Unknown, _) => masquerade(Decision::Depends, &format!("masqueraded unless {pods} (give --from)")),
        (SourceKind::Node, PodDetection::Interface(_)) => masquerade(
            Decision::Yes,
            &format!("the node's own traffic: not a pod's ({pods} only for pods): masqueraded"),
        ),
        (SourceKind::Node | SourceKind::Other, _) => {
            masquerade(Decision::Yes, &format!("not a pod ({pods} only for pods): masqueraded"))
        }
    }
}

/// An endpoint reaching itself through the service is masqueraded (so the reply comes back
/// through the node).
fn hairpin(out: &mut Masquerade, source: Option<IpAddr>, eligible: &[&Endpoint]) {
    let Some(source) = source else {
        return;
    };
    let own = eligible.iter().filter(|e| e.ip == source).count();
    if own == 0 {
        return;
    }
    if own == eligible.len() {
        out.decision = Decision::Yes;
        out.reasons.push("hairpin: the source is the endpoint it reaches: masqueraded".to_owned());
    } else if out.decision != Decision::Yes {
        out.decision = Decision::Depends;
        out.reasons.push("hairpin: masqueraded when the source's own endpoint is picked".to_owned());
    }
}
