use super::*;

use kproxy_core::{Endpoint, IpFamily, NamespacedName, Protocol, ProxyState, ServicePort, SessionAffinity};
use kproxy_netfilter::input_text;

use crate::Family;
use crate::config::NftablesConfig;
use crate::render::render_static;

fn port_name(i: usize) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns1", format!("svc{i}")), "p80", Protocol::Tcp)
}

/// `ports` ClusterIP ports with two endpoints each; every port shares endpoint 10.180.0.1,
/// port 0 has ClientIP affinity (a set of its own).
fn state(ports: usize) -> ProxyState {
    let mut state = ProxyState::new("node1");
    let family = state.family_mut(IpFamily::V4);
    for i in 0..ports {
        let mut port =
            ServicePort::new(format!("172.30.{}.{}", i / 250, i % 250 + 1).parse().unwrap(), 80, Protocol::Tcp);
        if i == 0 {
            port.session_affinity = SessionAffinity::ClientIp { timeout_seconds: 60 };
        }
        let own = format!("10.181.{}.{}", i / 250, i % 250 + 1).parse().unwrap();
        let endpoints = vec![Endpoint::new("10.180.0.1".parse().unwrap(), 8080), Endpoint::new(own, 8080)];
        family.services.insert(port_name(i), port);
        family.endpoints.insert(port_name(i), endpoints);
    }
    state
}

/// The script of a full load of `state` over a table holding `existing`, and what it
/// leaves committed.
fn load(state: &ProxyState, existing: &Existing) -> (String, Committed) {
    let config = NftablesConfig::default();
    let ctx = RenderContext { family: Family(IpFamily::V4), config: &config, node: state.topology_node() };
    let statics = render_static(&ctx, state);
    let mut load = FullLoad {
        ctx: &ctx,
        statics: &statics,
        ports: state.family(IpFamily::V4),
        name: "kproxy",
        existing,
        committed: Committed::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let script = runtime.block_on(input_text(&mut load)).unwrap();
    (script, load.committed)
}

/// The element texts of `set` in `script`.
fn elements_of<'a>(script: &'a str, set: &str) -> Vec<&'a str> {
    let prefix = format!("add element ip kproxy {set} {{ ");
    script
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str())?.strip_suffix(" }"))
        .flat_map(|items| items.split(", "))
        .collect()
}

#[test]
fn chains_are_declared_before_anything_names_them() {
    let (script, _) = load(&state(3), &Existing::default());
    let mut declared = BTreeSet::new();
    for line in script.lines() {
        if let Some(chain) = line.strip_prefix("add chain ip kproxy ") {
            declared.insert(chain.split(' ').next().unwrap().to_owned());
        } else if let Some(rule) = line.strip_prefix("add rule ip kproxy ") {
            let chain = rule.split(' ').next().unwrap();
            assert!(declared.contains(chain), "rule before its chain: {line}");
        }
        for target in line.split("goto ").skip(1) {
            let chain = target.split([' ', ',', '}']).next().unwrap();
            assert!(declared.contains(chain), "{chain} named before it is declared: {line}");
        }
    }
}

#[test]
fn a_shared_element_is_written_once_and_commands_hold_at_most_a_thousand() {
    let (script, _) = load(&state(700), &Existing::default());
    let hairpin = elements_of(&script, crate::render::names::HAIRPIN);
    assert_eq!(hairpin.iter().filter(|e| **e == "10.180.0.1 . 10.180.0.1").count(), 1, "shared by every port");
    assert_eq!(hairpin.len(), 701, "the shared endpoint and each port's own");
    let commands = script.lines().filter(|l| l.starts_with("add element ")).map(|l| l.matches(", ").count() + 1);
    assert!(commands.clone().all(|n| n <= ELEMENTS_PER_COMMAND));
    assert!(commands.clone().any(|n| n == ELEMENTS_PER_COMMAND), "full commands before the rest");
}

#[test]
fn what_is_committed_is_what_the_ports_render() {
    let state = state(5);
    let (_, committed) = load(&state, &Existing::default());
    let config = NftablesConfig::default();
    let ctx = RenderContext { family: Family(IpFamily::V4), config: &config, node: state.topology_node() };
    let renders = entries(state.family(IpFamily::V4)).map(|entry| (entry.name.clone(), render_port(&ctx, entry)));
    assert_eq!(format!("{committed:?}"), format!("{:?}", Committed::from_renders(renders)));
}

#[test]
fn only_objects_no_longer_wanted_are_deleted_at_the_end() {
    let (fresh, committed) = load(&state(2), &Existing::default());
    let wanted_chain =
        committed.ports.values().next().and_then(|_| {
            fresh.lines().find_map(|l| l.strip_prefix("add chain ip kproxy ").filter(|c| !c.contains(' ')))
        });
    let wanted_chain = wanted_chain.expect("a port chain").to_owned();
    let wanted_set = fresh.lines().find_map(|l| l.strip_prefix("add set ip kproxy ")).unwrap();
    let wanted_set = wanted_set.split(' ').next().unwrap().to_owned();
    let existing: Existing = (
        [wanted_chain.clone(), "services".to_owned(), "stale-chain".to_owned()].into(),
        [wanted_set.clone(), "service-ips".to_owned(), "stale-set".to_owned()].into(),
    );
    let (script, _) = load(&state(2), &existing);
    let deletes: Vec<&str> = script.lines().filter(|l| l.starts_with("delete ")).collect();
    assert_eq!(deletes, ["delete chain ip kproxy stale-chain", "delete set ip kproxy stale-set"]);
    assert!(script.ends_with("delete set ip kproxy stale-set\n"), "after every rule and element");
}

#[test]
fn equal_elements_of_different_sets_are_all_written() {
    // Internal traffic policy Local, external Cluster, the only endpoint local: the cluster
    // and the local endpoint maps get the same element text.
    let mut state = ProxyState::new("node1");
    let family = state.family_mut(IpFamily::V4);
    let mut port = ServicePort::new("172.30.0.44".parse().unwrap(), 80, Protocol::Tcp);
    port.internal_policy_local = true;
    port.node_port = Some(30080);
    let endpoints = vec![Endpoint { is_local: true, ..Endpoint::new("10.180.0.30".parse().unwrap(), 8080) }];
    family.services.insert(port_name(1), port);
    family.endpoints.insert(port_name(1), endpoints);
    let (script, _) = load(&state, &Existing::default());
    let element = "172.30.0.44 . 80 . 0 : 10.180.0.30 . 8080";
    assert_eq!(elements_of(&script, "local-endpoints-tcp"), [element], "{script}");
    assert_eq!(elements_of(&script, "cluster-endpoints-tcp"), [element], "{script}");
}
