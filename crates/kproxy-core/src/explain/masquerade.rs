//! Whether a forwarded packet is masqueraded, as each kind of mode decides it.

use std::net::IpAddr;

use super::{Decision, Masquerade, MasqueradeModel, ModeProfile, Path, SourceKind};
use crate::endpoint::Endpoint;

/// The decision for a packet taking `path` from `source` to one of `eligible`.
pub(super) fn decide(
    profile: &ModeProfile,
    path: &Path,
    kind: SourceKind,
    source: Option<IpAddr>,
    eligible: &[&Endpoint],
) -> Masquerade {
    match profile.masquerade {
        MasqueradeModel::Netfilter { masquerade_all } => {
            let mut out = netfilter(masquerade_all, !profile.cluster_cidrs.is_empty(), path, kind);
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
fn netfilter(masquerade_all: bool, detect_local: bool, path: &Path, kind: SourceKind) -> Masquerade {
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
    if !detect_local {
        return masquerade(
            Decision::No,
            "no --cluster-cidr: local traffic detection is off and cluster-IP traffic keeps its source",
        );
    }
    match kind {
        SourceKind::Pod => masquerade(Decision::No, "the source is in the cluster CIDR (a pod): kept"),
        SourceKind::Unknown => {
            masquerade(Decision::Depends, "masqueraded unless the source is in the cluster CIDR (give --from)")
        }
        SourceKind::Node | SourceKind::Other => {
            masquerade(Decision::Yes, "the source is outside the cluster CIDR (not a pod): masqueraded")
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
