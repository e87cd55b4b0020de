//! Runs the case table against a dataplane and reports one line per case.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kproxy_core::Dataplane;

use crate::Error;
use crate::cases::{Case, CaseError, cases};
use crate::harness::{BackendSpec, BoxError, DataplaneFactory, Harness, panic_text};
use crate::topology::{Cluster, NodeEnv};

/// How long one case may take, its own setup included.
const CASE_TIMEOUT: Duration = Duration::from_secs(150);

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The behaviour holds.
    Pass,
    /// It does not (or the case could not run): why.
    Fail(String),
    /// Not run: the reason the dataplane or the environment gave.
    Skip(String),
}

/// One case's line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The case's name.
    pub name: &'static str,
    /// What it proves.
    pub proves: &'static str,
    /// How it went.
    pub verdict: Verdict,
    /// How long it took (zero when skipped).
    pub elapsed: Duration,
}

impl std::fmt::Display for CaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Pass => write!(f, "PASS {}", self.name),
            Verdict::Fail(why) => write!(f, "FAIL {}: {}", self.name, why.replace('\n', "; ")),
            Verdict::Skip(why) => write!(f, "SKIP {}: {}", self.name, why.replace('\n', "; ")),
        }
    }
}

/// Every case's result, in table order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per selected case.
    pub cases: Vec<CaseReport>,
}

impl Report {
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.verdict)).count()
    }

    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Pass))
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail(_)))
    }

    /// Cases skipped.
    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skip(_)))
    }

    /// `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed, {} skipped", self.passed(), self.failed(), self.skipped())
    }

    /// Panics, listing the failures, unless no case failed and at least one was selected.
    pub fn assert_all_passed(&self) {
        assert!(!self.cases.is_empty(), "no conformance case was selected");
        let failures: Vec<String> =
            self.cases.iter().filter(|c| matches!(c.verdict, Verdict::Fail(_))).map(ToString::to_string).collect();
        assert!(failures.is_empty(), "conformance failures ({}):\n{}", self.summary(), failures.join("\n"));
    }
}

/// Runs every case of [`cases()`] (those whose name contains `filter`, if given) against
/// the dataplane `factory` builds, except `skips` (case name, reason), which are reported
/// as skipped. Builds one cluster for the whole run; prints a line per case and a final
/// `N passed, N failed, N skipped`.
pub async fn run_conformance<F>(factory: F, skips: &[(&str, &str)], filter: Option<&str>) -> Report
where
    F: Fn(&NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> + Send + Sync + 'static,
{
    run_cases(Arc::new(factory), &cases(), skips, filter).await
}

/// [`run_conformance`] over any table of cases.
pub async fn run_cases(
    factory: Arc<DataplaneFactory>,
    table: &[Case],
    skips: &[(&str, &str)],
    filter: Option<&str>,
) -> Report {
    run_with(BackendSpec::Dataplane(factory), table, skips, filter).await
}

/// [`run_cases`] with any backend: the case table is the same in every mode.
pub(crate) async fn run_with(
    spec: BackendSpec,
    table: &[Case],
    skips: &[(&str, &str)],
    filter: Option<&str>,
) -> Report {
    for (name, _) in skips.iter().filter(|(name, _)| !table.iter().any(|c| c.name == *name)) {
        println!("NOTE skip given for unknown case {name}");
    }
    let selected: Vec<&Case> = table.iter().filter(|c| filter.is_none_or(|f| c.name.contains(f))).collect();
    let skip_of = |name: &str| skips.iter().find(|(n, _)| *n == name).map(|(_, why)| (*why).to_owned());
    let needs_cluster = selected.iter().any(|c| skip_of(c.name).is_none());
    let mut harness = if needs_cluster { Some(setup(spec).await) } else { None };
    let mut report = Report::default();
    for case in selected {
        let start = Instant::now();
        let verdict = match (skip_of(case.name), harness.as_mut()) {
            (Some(why), _) => Verdict::Skip(why),
            (None, Some(Ok(h))) => run_one(h, case).await,
            (None, Some(Err(e))) => Verdict::Fail(format!("cluster setup failed: {e}")),
            (None, None) => Verdict::Fail("no cluster".to_owned()),
        };
        let line = CaseReport { name: case.name, proves: case.proves, verdict, elapsed: start.elapsed() };
        println!("{line}");
        report.cases.push(line);
    }
    if let Some(Ok(h)) = harness
        && let Err(e) = h.shutdown().await
    {
        println!("NOTE dataplane cleanup failed: {e}");
    }
    println!("{}", report.summary());
    report
}

async fn setup(spec: BackendSpec) -> Result<Harness, Error> {
    let cluster = tokio::task::spawn_blocking(Cluster::create)
        .await
        .map_err(|e| Error::new(format!("cluster creation panicked: {e}")))??;
    Harness::start(cluster, spec).await
}

async fn run_one(h: &mut Harness, case: &Case) -> Verdict {
    let run = AssertUnwindSafe((case.run)(h)).catch_unwind();
    let verdict = match tokio::time::timeout(CASE_TIMEOUT, run).await {
        Err(_) => Verdict::Fail(format!("did not finish within {CASE_TIMEOUT:?}")),
        Ok(Err(panic)) => Verdict::Fail(format!("panicked: {}", panic_text(&*panic))),
        Ok(Ok(Ok(()))) => Verdict::Pass,
        Ok(Ok(Err(CaseError::Fail(why)))) => Verdict::Fail(why),
        Ok(Ok(Err(CaseError::Skip(why)))) => Verdict::Skip(why),
    };
    match (h.reset().await, verdict) {
        (Err(e), Verdict::Pass) => Verdict::Fail(format!("resetting after the case failed: {e}")),
        (Err(e), other) => {
            println!("NOTE resetting after {} failed: {e}", case.name);
            other
        }
        (Ok(()), verdict) => verdict,
    }
}
