//! `RecordingNft`: a runner that remembers every script it applied, streamed ones
//! included (the text is copied as it passes through), and how each ended.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use kproxy_core::IpFamily;
use tokio::io::AsyncWrite;

use crate::command::{CommandError, WriteInput};
use crate::nft::NftRunner;

/// A script applied through a [`RecordingNft`].
#[derive(Debug, Clone)]
pub struct RecordedScript {
    /// Its text.
    pub text: String,
    /// The error it failed with (`None`: applied).
    pub error: Option<String>,
}

/// Another runner (the real `nft` in benches and kernel tests), recording each script.
pub struct RecordingNft {
    inner: Arc<dyn NftRunner>,
    scripts: Mutex<Vec<RecordedScript>>,
}

impl RecordingNft {
    /// Records what `inner` applies.
    pub fn new(inner: Arc<dyn NftRunner>) -> Self {
        Self { inner, scripts: Mutex::new(Vec::new()) }
    }

    /// Every script applied so far, in order.
    pub fn scripts(&self) -> Vec<RecordedScript> {
        self.lock().clone()
    }

    /// Takes the scripts recorded so far, forgetting them.
    pub fn take_scripts(&self) -> Vec<RecordedScript> {
        std::mem::take(&mut *self.lock())
    }

    /// Each failed script, with its error.
    pub fn failures(&self) -> Vec<RecordedScript> {
        self.lock().iter().filter(|s| s.error.is_some()).cloned().collect()
    }

    fn record(&self, text: String, result: &Result<(), CommandError>) {
        let error = result.as_ref().err().map(ToString::to_string);
        self.lock().push(RecordedScript { text, error });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedScript>> {
        self.scripts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl NftRunner for RecordingNft {
    async fn apply(&self, script: &str) -> Result<(), CommandError> {
        let result = self.inner.apply(script).await;
        self.record(script.to_owned(), &result);
        result
    }

    async fn apply_streamed(&self, script: &mut dyn WriteInput) -> Result<(), CommandError> {
        let mut tee = Tee { input: script, copy: Vec::new() };
        let result = self.inner.apply_streamed(&mut tee).await;
        self.record(String::from_utf8_lossy(&tee.copy).into_owned(), &result);
        result
    }

    async fn list(&self, what: &str) -> Result<String, CommandError> {
        self.inner.list(what).await
    }

    async fn counter_packets(&self, family: IpFamily, table: &str, name: &str) -> Result<Option<u64>, CommandError> {
        self.inner.counter_packets(family, table, name).await
    }
}

/// An input whose bytes are also kept in `copy` as they are written.
struct Tee<'a> {
    input: &'a mut dyn WriteInput,
    copy: Vec<u8>,
}

#[async_trait::async_trait]
impl WriteInput for Tee<'_> {
    async fn write_to(&mut self, out: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        let mut writer = TeeWriter { out, copy: &mut self.copy };
        self.input.write_to(&mut writer).await
    }
}

struct TeeWriter<'a, 'o> {
    out: &'a mut (dyn AsyncWrite + Unpin + Send + 'o),
    copy: &'a mut Vec<u8>,
}

impl AsyncWrite for TeeWriter<'_, '_> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut *this.out).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            this.copy.extend_from_slice(&buf[..written]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.out).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.out).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Text;
    use crate::nft::FakeNft;

    #[tokio::test]
    async fn streamed_and_whole_scripts_are_recorded_with_their_outcome() {
        let fake = FakeNft::default();
        let recording = RecordingNft::new(Arc::new(fake.clone()));
        recording.apply("add table ip t\n").await.unwrap();
        fake.fail_next(1);
        let streamed = recording.apply_streamed(&mut Text("flush table ip t\n")).await;
        assert!(streamed.is_err());
        let scripts = recording.scripts();
        assert_eq!(scripts.len(), 2);
        assert_eq!((scripts[0].text.as_str(), scripts[0].error.is_none()), ("add table ip t\n", true));
        assert_eq!(scripts[1].text, "flush table ip t\n");
        assert_eq!(recording.failures().len(), 1);
        assert_eq!(fake.scripts(), ["add table ip t\n", "flush table ip t\n"], "the inner runner got both");
    }
}
