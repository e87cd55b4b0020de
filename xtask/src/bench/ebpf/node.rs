//! A thread inside the benchmark's node namespace that owns an eBPF dataplane: the
//! dataplane lists and attaches to the interfaces of the thread's namespace, so its tc
//! programs only ever reach the benchmark's own interfaces.

use std::sync::mpsc;
use std::thread;

use anyhow::Context;
use kproxy_ebpf::EbpfDataplane;
use nix::sched::{CloneFlags, setns};

/// What a job on the thread gets.
pub(super) struct Node {
    /// A runtime for the dataplane's async calls.
    pub(super) runtime: tokio::runtime::Runtime,
    /// A dataplane kept between jobs (cleaned up when the thread ends).
    pub(super) dataplane: Option<EbpfDataplane>,
}

type Job = Box<dyn FnOnce(&mut Node) + Send>;

/// The thread; dropping it cleans its dataplane up and joins it.
pub(super) struct NodeThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Starts the thread inside namespace `ns` (`ip netns` name).
    pub(super) fn start(ns: &str) -> anyhow::Result<Self> {
        let path = format!("/run/netns/{ns}");
        let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        let (jobs, received) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<anyhow::Result<()>>();
        let thread = thread::spawn(move || {
            let node = setns(&file, CloneFlags::CLONE_NEWNET)
                .context("setns")
                .and_then(|()| Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?))
                .map(|runtime| Node { runtime, dataplane: None });
            let mut node = match node {
                Ok(node) => node,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            for job in received {
                job(&mut node);
            }
            if let Some(mut dataplane) = node.dataplane.take() {
                let _ = node.runtime.block_on(kproxy_core::Dataplane::cleanup(&mut dataplane));
            }
        });
        let thread = Self { jobs: Some(jobs), thread: Some(thread) };
        ready.recv().context("the node thread ended")??;
        Ok(thread)
    }

    /// Runs `job` on the thread and returns what it returned.
    pub(super) fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Node) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let (reply, result) = mpsc::channel();
        let job: Job = Box::new(move |node| {
            let _ = reply.send(job(node));
        });
        let jobs = self.jobs.as_ref().context("the node thread is stopping")?;
        jobs.send(job).map_err(|_| anyhow::anyhow!("the node thread ended"))?;
        result.recv().context("the node thread ended during a job")
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
