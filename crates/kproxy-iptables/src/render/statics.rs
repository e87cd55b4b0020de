//! Rules that do not depend on services: masquerading, forwarding, the node-port jump,
//! kubelet's localhost firewall, and the jumps from the built-in chains.

use kproxy_core::IpFamily;
use kproxy_netfilter::CT_STATE_INVALID_DROPPED;

use super::names::{
    KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD, KUBE_MARK_MASQ, KUBE_NODEPORTS, KUBE_POSTROUTING,
    KUBE_PROXY_FIREWALL, KUBE_SERVICES,
};
use super::rule::comment;
use crate::config::IptablesConfig;

/// A jump from a built-in chain into one of ours, ensured on full syncs (upstream's
/// `iptablesJumpChains`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    /// `filter` or `nat`.
    pub table: &'static str,
    /// The built-in chain (`INPUT`, `PREROUTING`, …).
    pub from: &'static str,
    /// Our chain.
    pub to: &'static str,
    /// The rule after `-A FROM`, as `iptables-save` prints it.
    pub spec: String,
}

/// The rules of one family that do not depend on services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statics {
    /// filter chains every sync declares (and so flushes).
    pub filter_chains: Vec<&'static str>,
    /// filter rules, in order (whole `-A` lines).
    pub filter_rules: Vec<String>,
    /// nat rules of `KUBE-POSTROUTING` and `KUBE-MARK-MASQ`.
    pub nat_rules: Vec<String>,
    /// The node-port jumps that must end nat `KUBE-SERVICES`.
    pub nat_services_tail: Vec<String>,
    /// Jumps from the built-in chains, in the order upstream prepends them.
    pub jumps: Vec<Jump>,
}

/// The static rules of `family`.
pub fn render_statics(config: &IptablesConfig, family: IpFamily) -> Statics {
    let localhost = config.localhost_nodeports_in(family);
    let mut filter_chains =
        vec![KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL];
    let mut filter_rules = Vec::new();
    if localhost {
        filter_chains.push(KUBE_FIREWALL);
        filter_rules.push(format!(
            "-A {KUBE_FIREWALL} {} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            comment("block incoming localnet connections")
        ));
    }
    filter_rules.extend(forward_rules(config));
    Statics {
        filter_chains,
        filter_rules,
        nat_rules: masquerade_rules(config),
        nat_services_tail: nodeport_jumps(config, family, localhost),
        jumps: jumps(localhost),
    }
}

fn mark(config: &IptablesConfig) -> String {
    format!("{:#x}", config.masquerade_mark)
}

fn masquerade_rules(config: &IptablesConfig) -> Vec<String> {
    let mark = mark(config);
    let random_fully = if config.random_fully { " --random-fully" } else { "" };
    vec![
        format!("-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"),
        format!("-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}"),
        format!(
            "-A {KUBE_POSTROUTING} {} -j MASQUERADE{random_fully}",
            comment("kubernetes service traffic requiring SNAT")
        ),
        format!("-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}"),
    ]
}

fn forward_rules(config: &IptablesConfig) -> Vec<String> {
    let mark = mark(config);
    let count = IptablesConfig::nfacct_match(config.counters.ct_state_invalid_dropped, CT_STATE_INVALID_DROPPED);
    let mut rules = Vec::new();
    if !config.conntrack_tcp_liberal {
        rules.push(format!("-A {KUBE_FORWARD} -m conntrack --ctstate INVALID {count}-j DROP"));
    }
    rules.push(format!(
        "-A {KUBE_FORWARD} {} -m mark --mark {mark}/{mark} -j ACCEPT",
        comment("kubernetes forwarding rules")
    ));
    rules.push(format!(
        "-A {KUBE_FORWARD} {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        comment("kubernetes forwarding conntrack rule")
    ));
    rules
}

/// The last rule(s) of nat `KUBE-SERVICES`: every local address, or those in the
/// configured CIDRs (one rule per CIDR: `-d CIDR` and `--dst-type LOCAL`).
fn nodeport_jumps(config: &IptablesConfig, family: IpFamily, localhost: bool) -> Vec<String> {
    let c = comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
    let jump = |matches: String| format!("-A {KUBE_SERVICES} {c} {matches} -j {KUBE_NODEPORTS}");
    match config.nodeport_addresses.cidrs(family) {
        None => {
            let except = match family {
                IpFamily::V6 => " ! -d ::1/128",
                IpFamily::V4 if !localhost => " ! -d 127.0.0.0/8",
                IpFamily::V4 => "",
            };
            vec![jump(format!("-m addrtype --dst-type LOCAL{except}"))]
        }
        Some(cidrs) => cidrs.iter().map(|cidr| jump(format!("-d {cidr} -m addrtype --dst-type LOCAL"))).collect(),
    }
}

fn jumps(localhost: bool) -> Vec<Jump> {
    const NEW: &str = "-m conntrack --ctstate NEW ";
    let jump = |table, from, to, extra: &str, text: &str| Jump {
        table,
        from,
        to,
        spec: format!("{extra}{} -j {to}", comment(text)),
    };
    let external = "kubernetes externally-visible service portals";
    let portals = "kubernetes service portals";
    let firewall = "kubernetes load balancer firewall";
    let mut all = vec![
        jump("filter", "INPUT", KUBE_EXTERNAL_SERVICES, NEW, external),
        jump("filter", "FORWARD", KUBE_EXTERNAL_SERVICES, NEW, external),
        jump("filter", "INPUT", KUBE_NODEPORTS, "", "kubernetes health check service ports"),
        jump("filter", "FORWARD", KUBE_SERVICES, NEW, portals),
        jump("filter", "OUTPUT", KUBE_SERVICES, NEW, portals),
        jump("filter", "FORWARD", KUBE_FORWARD, "", "kubernetes forwarding rules"),
        jump("filter", "INPUT", KUBE_PROXY_FIREWALL, NEW, firewall),
        jump("filter", "OUTPUT", KUBE_PROXY_FIREWALL, NEW, firewall),
        jump("filter", "FORWARD", KUBE_PROXY_FIREWALL, NEW, firewall),
        jump("nat", "OUTPUT", KUBE_SERVICES, "", portals),
        jump("nat", "PREROUTING", KUBE_SERVICES, "", portals),
        jump("nat", "POSTROUTING", KUBE_POSTROUTING, "", "kubernetes postrouting rules"),
    ];
    if localhost {
        // kubelet's own jumps (upstream's `iptablesKubeletJumpChains`): no comment.
        for from in ["INPUT", "OUTPUT"] {
            all.push(Jump { table: "filter", from, to: KUBE_FIREWALL, spec: format!("-j {KUBE_FIREWALL}") });
        }
    }
    all
}
