//! Watchers of Services, EndpointSlices, this node's Node and ServiceCIDRs on a Kubernetes
//! apiserver.

use std::fmt::Debug;
use std::path::PathBuf;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::ObjectKind;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::backoff::RelistBackoff;
use super::batch::{Batch, to_event};
use super::lenient::Lenient;
use super::{ENDPOINT_SLICE_LABEL_SELECTOR, ObjectEvent, SERVICE_LABEL_SELECTOR, SourceEvent};

/// A source that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// The kubeconfig cannot be read.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig given and no in-cluster configuration found.
    #[error("no --kubeconfig or --master given and no in-cluster configuration: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// `--master` is not a URL.
    #[error("--master {0:?} is not a valid URL")]
    Master(String),
    /// The client cannot be built.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Watches a Kubernetes apiserver. Each watch relists with backoff after any failure
/// (a dropped connection, 410 Gone, an unreachable apiserver) and keeps going forever; an
/// object that does not decode is reported and skipped, never failing its list.
pub struct KubeSource {
    client: Client,
    node_name: String,
}

impl KubeSource {
    /// Connects with `--kubeconfig` and `--master` as kube-proxy does: the kubeconfig (or
    /// in-cluster config) with the apiserver URL replaced by `master` when given.
    ///
    /// Requests are not retried inside the client: the watchers' backoff alone paces the
    /// retries (kube's own retry of 503 answers waits ever longer, up to minutes, and would
    /// keep a proxy away from a recovered apiserver).
    pub async fn connect(
        kubeconfig: Option<&PathBuf>,
        master: Option<&str>,
        node_name: &str,
    ) -> Result<Self, KubeSourceError> {
        let mut config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|source| KubeSourceError::Kubeconfig { path: path.clone(), source })?;
                Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|source| KubeSourceError::Kubeconfig { path: path.clone(), source })?
            }
            None => match master {
                Some(url) => Config::new(url.parse().map_err(|_| KubeSourceError::Master(url.to_owned()))?),
                None => Config::infer().await.map_err(KubeSourceError::Infer)?,
            },
        };
        if let Some(url) = master {
            config.cluster_url = url.parse().map_err(|_| KubeSourceError::Master(url.to_owned()))?;
        }
        config.default_retry = false;
        let client = Client::try_from(config).map_err(KubeSourceError::Client)?;
        Ok(Self { client, node_name: node_name.to_owned() })
    }

    /// The client the watchers use; the daemon publishes Events with it too.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs the four watchers until `events` is closed. ServiceCIDRs are networking.k8s.io/v1
    /// (GA in Kubernetes 1.33); an apiserver that does not serve them fails that watch alone,
    /// which keeps retrying with backoff while everything else is programmed.
    pub async fn run(self, events: mpsc::Sender<SourceEvent>) {
        let services = watcher::Config::default().labels(SERVICE_LABEL_SELECTOR);
        let slices = watcher::Config::default().labels(ENDPOINT_SLICE_LABEL_SELECTOR);
        let node = watcher::Config::default().fields(&format!("metadata.name={}", self.node_name));
        let client = self.client;
        tokio::join!(
            forward::<Service>(client.clone(), services, events.clone(), ObjectKind::Service, SourceEvent::Service),
            forward::<EndpointSlice>(
                client.clone(),
                slices,
                events.clone(),
                ObjectKind::EndpointSlice,
                SourceEvent::EndpointSlice
            ),
            forward::<Node>(client.clone(), node, events.clone(), ObjectKind::Node, SourceEvent::Node),
            forward::<ServiceCIDR>(
                client,
                watcher::Config::default(),
                events,
                ObjectKind::ServiceCidr,
                SourceEvent::ServiceCidr
            ),
        );
    }
}

/// Turns one watcher's stream into source events until the receiver is gone; after an
/// error, waits as [`RelistBackoff`] says before the watcher tries again.
async fn forward<K>(
    client: Client,
    config: watcher::Config,
    events: mpsc::Sender<SourceEvent>,
    kind: ObjectKind,
    wrap: fn(ObjectEvent<K>) -> SourceEvent,
) where
    K: Resource<DynamicType = ()> + Clone + Default + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher::watcher(Api::<Lenient<K>>::all(client), config);
    let mut batches = std::pin::pin!(batch_relists(stream));
    let mut backoff = RelistBackoff::new();
    while let Some(item) = batches.next().await {
        match item {
            Ok(batch) => {
                if events.send(wrap(to_event(kind, batch))).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let delay = backoff.delay_after(&error, tokio::time::Instant::now());
                tracing::warn!(%kind, %error, ?delay, "watch failed; relisting after a backoff");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = events.closed() => return,
                }
            }
        }
    }
}

/// How many listed objects one piece of a relist carries: a large list is handed over (and
/// folded, and dropped) in pieces, never held whole.
const LIST_PIECE: usize = 256;

/// Turns `Init`, `InitApply`… `InitDone` into a relist in pieces of [`LIST_PIECE`] objects.
fn batch_relists<T, S>(stream: S) -> impl Stream<Item = Result<Batch<T>, watcher::Error>>
where
    S: Stream<Item = Result<Event<T>, watcher::Error>>,
{
    stream
        .scan(Vec::<T>::new(), |piece, item| {
            let out: Vec<Result<Batch<T>, watcher::Error>> = match item {
                Err(e) => vec![Err(e)],
                Ok(Event::Init) => {
                    piece.clear();
                    vec![Ok(Batch::ListStart)]
                }
                Ok(Event::InitApply(obj)) => {
                    piece.push(obj);
                    if piece.len() < LIST_PIECE { Vec::new() } else { vec![Ok(Batch::Listed(std::mem::take(piece)))] }
                }
                Ok(Event::InitDone) => {
                    let rest = (!piece.is_empty()).then(|| Ok(Batch::Listed(std::mem::take(piece))));
                    rest.into_iter().chain([Ok(Batch::ListEnd)]).collect()
                }
                Ok(Event::Apply(obj)) => vec![Ok(Batch::Apply(obj))],
                Ok(Event::Delete(obj)) => vec![Ok(Batch::Delete(obj))],
            };
            futures::future::ready(Some(futures::stream::iter(out)))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use kube::runtime::watcher::Event;

    use super::{Batch, LIST_PIECE, batch_relists};

    #[tokio::test]
    async fn a_relist_comes_in_pieces_between_its_start_and_end() {
        let listed = LIST_PIECE + 3;
        let events = std::iter::once(Event::Init)
            .chain((0..listed).map(Event::InitApply))
            .chain([Event::InitDone, Event::Apply(7), Event::Init, Event::InitDone])
            .map(Ok);
        let batches: Vec<Batch<usize>> =
            batch_relists(futures::stream::iter(events)).map(|b| b.expect("no error")).collect().await;
        let shape: Vec<String> = batches
            .iter()
            .map(|b| match b {
                Batch::ListStart => "start".to_owned(),
                Batch::Listed(objects) => format!("{}", objects.len()),
                Batch::ListEnd => "end".to_owned(),
                Batch::Apply(o) => format!("apply {o}"),
                Batch::Delete(o) => format!("delete {o}"),
            })
            .collect();
        let full = LIST_PIECE.to_string();
        assert_eq!(shape, ["start", full.as_str(), "3", "end", "apply 7", "start", "end"]);
    }
}
