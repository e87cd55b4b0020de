//! The explanation as text for a person.

use std::fmt::Write as _;

use kproxy_core::explain::{Decision, EndpointSet, Explanation, MatchedPort, SourceKind, Verdict};

/// The whole explanation, one topic per paragraph.
pub fn render(x: &Explanation) -> String {
    let mut out = String::new();
    let from = match x.source {
        Some(ip) => format!("{ip} ({})", source_kind(x.source_kind)),
        None => "an unspecified source".to_owned(),
    };
    let _ = writeln!(out, "packet       {} from {from}", x.destination);
    let _ = writeln!(out, "node         {} (mode {})", x.node, x.mode);
    match &x.service {
        Some(service) => service_lines(&mut out, service),
        None => out.push_str("service      none\n"),
    }
    let _ = writeln!(out, "verdict      {}: {}", verdict(x.verdict), x.verdict_reason);
    if !x.endpoints.is_empty() {
        out.push_str("endpoints    (+ eligible, - not)\n");
        for e in &x.endpoints {
            let mark = if e.eligible { '+' } else { '-' };
            let node = e.node.as_deref().unwrap_or("?");
            let _ = writeln!(out, "  {mark} {:<24} node {node:<12} {}", e.address, e.reason);
        }
    }
    let _ = writeln!(out, "masquerade   {}", decision(x.masquerade.decision));
    for reason in &x.masquerade.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    if !x.rules.is_empty() {
        let _ = writeln!(out, "rules        ({})", x.mode);
        for rule in &x.rules {
            let _ = write!(out, "  {} {}: {}", rule.kind, rule.table, rule.name);
            match rule.detail.as_deref() {
                Some(detail) if detail.contains('\n') || rule.kind == "chain" => {
                    out.push('\n');
                    detail.lines().for_each(|line| {
                        let _ = writeln!(out, "      {line}");
                    });
                }
                Some(detail) => {
                    let _ = writeln!(out, " : {detail}");
                }
                None => out.push('\n'),
            }
        }
    }
    if !x.notes.is_empty() {
        out.push_str("notes\n");
        for note in &x.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    out
}

fn service_lines(out: &mut String, s: &MatchedPort) {
    let (name, family, by) = (&s.service_port, s.family.as_str(), s.matched_by.describe());
    let _ = writeln!(out, "service      {name} ({family}, matched by {by}; {})", port_text(s));
    let traffic = if s.external_traffic { "external" } else { "internal" };
    let field = if s.external_traffic { "externalTrafficPolicy" } else { "internalTrafficPolicy" };
    let set = match s.endpoint_set {
        EndpointSet::Cluster => "cluster-wide endpoints",
        EndpointSet::Local => "this node's endpoints",
    };
    let short = if s.short_circuit { ", short-circuited" } else { "" };
    let _ = writeln!(out, "policy       {traffic} traffic, {field} {}{short}: {set}", s.traffic_policy);
    if let Some(seconds) = s.session_affinity_seconds {
        let _ = writeln!(out, "affinity     ClientIP, {seconds}s");
    }
    if !s.source_ranges.is_empty() {
        let _ = writeln!(out, "sources      {}", s.source_ranges.join(", "));
    }
}

fn port_text(s: &MatchedPort) -> String {
    match s.node_port {
        Some(node_port) => format!("service port {}, node port {node_port}, cluster IP {}", s.port, s.cluster_ip),
        None => format!("service port {}, cluster IP {}", s.port, s.cluster_ip),
    }
}

fn source_kind(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Unknown => "unknown",
        SourceKind::Pod => "a pod",
        SourceKind::Node => "this node",
        SourceKind::Other => "outside the cluster",
    }
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Forward => "forward",
        Verdict::Reject => "reject",
        Verdict::Drop => "drop",
        Verdict::NotAService => "not a service",
    }
}

fn decision(decision: Decision) -> &'static str {
    match decision {
        Decision::Yes => "yes",
        Decision::No => "no",
        Decision::Depends => "depends",
    }
}
