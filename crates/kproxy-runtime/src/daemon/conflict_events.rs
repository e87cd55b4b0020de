//! Kubernetes Events for lost claims: when a Service loses a claim (an address and port,
//! or a node port) to another, a Warning Event on the losing Service says which claim and
//! to whom, once per conflict while it lasts. Publishing runs in its own task: it never
//! delays or fails a sync, and a failure is only logged.

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kproxy_core::{ClaimKind, Conflict, NamespacedName};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The Event's reason.
const REASON: &str = "ServicePortConflict";
/// The reporting controller.
const CONTROLLER: &str = "kproxy";

/// Publishes an Event per conflict handed to it; stops when dropped.
#[derive(Debug)]
pub(super) struct ConflictEvents {
    queue: mpsc::UnboundedSender<Conflict>,
    task: JoinHandle<()>,
}

impl ConflictEvents {
    /// Starts publishing with `client`, as kproxy on node `node`.
    pub(super) fn spawn(client: Client, node: &str) -> Self {
        let (queue, conflicts) = mpsc::unbounded_channel();
        let reporter = Reporter { controller: CONTROLLER.to_owned(), instance: Some(node.to_owned()) };
        let task = tokio::spawn(publish_all(client, reporter, conflicts));
        Self { queue, task }
    }

    /// Queues the Event of `conflict`; never waits.
    pub(super) fn publish(&self, conflict: Conflict) {
        if self.queue.send(conflict).is_err() {
            tracing::debug!("the Event publisher has stopped");
        }
    }
}

impl Drop for ConflictEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn publish_all(client: Client, reporter: Reporter, mut conflicts: mpsc::UnboundedReceiver<Conflict>) {
    while let Some(conflict) = conflicts.recv().await {
        if let Err(error) = publish(&client, &reporter, &conflict).await {
            tracing::warn!(
                %error,
                loser = %conflict.loser,
                claim = %conflict.claim,
                "cannot publish the service port conflict as an Event"
            );
        }
    }
}

/// Publishes the Event of `conflict` on the losing Service (read first for its UID, so that
/// `kubectl describe` shows it).
async fn publish(client: &Client, reporter: &Reporter, conflict: &Conflict) -> Result<(), kube::Error> {
    let loser = &conflict.loser.service;
    let services: Api<Service> = Api::namespaced(client.clone(), &loser.namespace);
    let regarding = services.get(&loser.name).await?.object_ref(&());
    // A recorder per conflict: kube's recorder folds Events with the same object, related
    // object and reason into one series that keeps the first note, and each conflict (a
    // claim) has a note of its own.
    Recorder::new(client.clone(), reporter.clone()).publish(&event(conflict), &regarding).await
}

/// The Event of `conflict`.
fn event(conflict: &Conflict) -> Event {
    Event {
        type_: EventType::Warning,
        reason: REASON.to_owned(),
        note: Some(note(conflict)),
        action: "ProgramServicePort".to_owned(),
        secondary: Some(service_reference(&conflict.winner.service)),
    }
}

/// E.g. `port p80/TCP loses 192.0.2.1:80/TCP (an external IP) to Service ns1/older port
/// p80/TCP, which takes precedence (the oldest Service wins); it is not programmed for
/// this Service`.
fn note(conflict: &Conflict) -> String {
    let (loser, winner) = (&conflict.loser, &conflict.winner);
    let through = match conflict.kind {
        ClaimKind::ClusterIp => "its cluster IP",
        ClaimKind::ExternalIp => "an external IP",
        ClaimKind::LoadBalancerIp => "a load-balancer IP",
        ClaimKind::NodePort => "its node port",
    };
    format!(
        "port {}/{} loses {} ({through}) to Service {} port {}/{}, which takes precedence (the oldest \
         Service wins); it is not programmed for this Service",
        loser.port, loser.protocol, conflict.claim, winner.service, winner.port, winner.protocol
    )
}

fn service_reference(service: &NamespacedName) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Service".to_owned()),
        namespace: Some(service.namespace.clone()),
        name: Some(service.name.clone()),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use kproxy_core::{Claim, Protocol, ServicePortName};

    use super::*;

    #[test]
    fn the_event_names_the_claim_and_the_winning_service() {
        let port = |name: &str| ServicePortName::new(NamespacedName::new("ns1", name), "p80", Protocol::Tcp);
        let claim = Claim::Address { ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), protocol: Protocol::Tcp, port: 80 };
        let conflict = Conflict { claim, winner: port("older"), loser: port("newer"), kind: ClaimKind::ExternalIp };
        let event = event(&conflict);
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "ServicePortConflict");
        let note = event.note.unwrap_or_default();
        let start = "port p80/TCP loses 192.0.2.1:80/TCP (an external IP) to Service ns1/older port p80/TCP";
        assert!(note.starts_with(start), "{note}");
        assert!(note.len() < 1024, "an Event's note is at most 1 kB");
        let related = event.secondary.unwrap_or_default();
        assert_eq!((related.kind.as_deref(), related.name.as_deref()), (Some("Service"), Some("older")));
    }
}
