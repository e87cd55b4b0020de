//! What every dataplane's rendering shares: the service ports of one family with their
//! endpoints ([`PortEntry`]), rendered one by one into a [`FamilyRender`] (a full sync) or
//! for the ports that changed ([`render_changes`], a partial sync).

use std::collections::BTreeMap;

use crate::{Endpoint, FamilyState, IpFamily, ServicePort, ServicePortName};

/// One service port of a family with its endpoints: what a dataplane renders per port.
#[derive(Debug, Clone, Copy)]
pub struct PortEntry<'a> {
    /// The port's name.
    pub name: &'a ServicePortName,
    /// The port.
    pub port: &'a ServicePort,
    /// Its endpoints (of the same family).
    pub endpoints: &'a [Endpoint],
}

/// Every service port of `view`, in name order, with its endpoints.
pub fn entries(view: &FamilyState) -> impl Iterator<Item = PortEntry<'_>> {
    view.services.iter().map(|(name, port)| PortEntry { name, port, endpoints: view.endpoints.get(name) })
}

/// Service port `name` of `view` with its endpoints; `None` when `view` has no such port.
pub fn entry<'a>(view: &'a FamilyState, name: &'a ServicePortName) -> Option<PortEntry<'a>> {
    view.services.get(name).map(|port| PortEntry { name, port, endpoints: view.endpoints.get(name) })
}

/// Everything a dataplane programs for one family: what does not depend on services
/// (`statics`), and what each service port adds, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRender<S, P> {
    /// The family.
    pub family: IpFamily,
    /// The part that does not depend on services.
    pub statics: S,
    /// Per service port, in name order.
    pub ports: BTreeMap<ServicePortName, P>,
}

impl<S, P> FamilyRender<S, P> {
    /// Renders every service port of `view` with `render_port`, beside `statics`.
    pub fn new(view: &FamilyState, statics: S, render_port: impl FnMut(PortEntry<'_>) -> P) -> Self {
        let mut render_port = render_port;
        let ports = entries(view).map(|entry| (entry.name.clone(), render_port(entry))).collect();
        Self { family: view.family, statics, ports }
    }
}

/// The renders of the ports `names` of `view` with `render_port`, in the order of `names`:
/// `None` for a port that is gone (what a partial sync removes).
pub fn render_changes<'a, P>(
    view: &'a FamilyState,
    names: impl IntoIterator<Item = &'a ServicePortName>,
    mut render_port: impl FnMut(PortEntry<'_>) -> P,
) -> impl Iterator<Item = (ServicePortName, Option<P>)> {
    names.into_iter().map(move |name| (name.clone(), entry(view, name).map(&mut render_port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NamespacedName, Protocol};

    fn name(svc: &str) -> ServicePortName {
        ServicePortName::new(NamespacedName::new("ns", svc), "p", Protocol::Tcp)
    }

    fn view() -> FamilyState {
        let mut view = FamilyState::new(IpFamily::V4);
        for (svc, ip) in [("b", "172.30.0.2"), ("a", "172.30.0.1")] {
            view.services.insert(name(svc), ServicePort::new(ip.parse().unwrap(), 80, Protocol::Tcp));
        }
        view.endpoints.insert(name("a"), vec![Endpoint::new("10.0.0.1".parse().unwrap(), 8080)]);
        view
    }

    #[test]
    fn entries_are_in_name_order_with_their_endpoints() {
        let view = view();
        let found: Vec<(String, usize)> =
            entries(&view).map(|e| (e.name.service.name.clone(), e.endpoints.len())).collect();
        assert_eq!(found, [("a".to_owned(), 1), ("b".to_owned(), 0)]);
        assert_eq!(entry(&view, &name("b")).map(|e| e.port.port), Some(80));
        assert!(entry(&view, &name("c")).is_none());
    }

    #[test]
    fn a_family_render_has_every_port() {
        let render = FamilyRender::new(&view(), "statics", |e| e.port.cluster_ip.to_string());
        assert_eq!(render.family, IpFamily::V4);
        assert_eq!(render.statics, "statics");
        assert_eq!(render.ports.values().collect::<Vec<_>>(), ["172.30.0.1", "172.30.0.2"]);
    }

    #[test]
    fn changes_render_present_ports_and_mark_gone_ones() {
        let view = view();
        let names = [name("b"), name("gone")];
        let changed: Vec<_> = render_changes(&view, &names, |e| e.endpoints.len()).collect();
        assert_eq!(changed, [(name("b"), Some(0)), (name("gone"), None)]);
    }
}
