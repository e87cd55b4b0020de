//! [`SyncRunner::drive`]: a driver's inputs are taken between runs, never during one; an
//! input asking for a run counts as a request.

use super::*;

/// An input: whether it asks for a run.
type Input = bool;

/// A [`Driver`] whose inputs come from the test; it records when it took each input and
/// when each run started, and plays a script of runs.
struct InputDriver {
    t0: Instant,
    inputs: mpsc::UnboundedReceiver<Input>,
    plan: VecDeque<Step>,
    taken: Vec<(Duration, Input)>,
    runs: Vec<Call>,
}

impl SyncFn for InputDriver {
    type Error = RunError<TestError>;

    async fn sync(&mut self, kind: SyncKind) -> Outcome {
        self.runs.push((self.t0.elapsed(), kind));
        let step = self.plan.pop_front().unwrap_or_else(Step::ok);
        sleep(step.takes).await;
        step.outcome
    }
}

impl Driver for InputDriver {
    async fn next_input(&mut self) -> Option<bool> {
        let input = self.inputs.recv().await?;
        self.taken.push((self.t0.elapsed(), input));
        Some(input)
    }
}

type Driven = (Result<StopReason, RunError<TestError>>, InputDriver);

/// A spawned runner driving an [`InputDriver`].
struct Driving {
    t0: Instant,
    handle: SyncHandle,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Driven>,
}

impl Driving {
    fn start(config: SyncConfig, plan: Vec<Step>) -> Self {
        let (runner, handle) = SyncRunner::new(config).expect("valid config");
        let t0 = Instant::now();
        let (inputs, receiver) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let driver = InputDriver { t0, inputs: receiver, plan: plan.into(), taken: Vec::new(), runs: Vec::new() };
        let stop = async move {
            if shutdown_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let task = tokio::spawn(runner.drive(driver, stop));
        Self { t0, handle, inputs, shutdown, task }
    }

    async fn at(&self, n: u64) {
        sleep_until(self.t0 + ms(n)).await;
    }

    fn send(&self, input: Input) {
        self.inputs.send(input).expect("runner takes inputs");
    }

    /// Fires the shutdown signal and waits for the runner.
    async fn shut_down(self) -> Driven {
        self.shutdown.send(()).expect("runner still listening");
        self.task.await.expect("runner task panicked")
    }
}

#[tokio::test(start_paused = true)]
async fn an_input_asking_for_a_run_starts_one_and_inputs_during_a_run_wait_for_its_end() {
    let d = Driving::start(upstream_config(), vec![Step::ok_taking(ms(500))]);
    d.send(true);
    d.at(100).await;
    d.send(true); // During the run: taken when it ends, and run after the min interval.
    d.at(3_000).await;
    let (result, driver) = d.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(driver.taken, vec![(ms(0), true), (ms(500), true)]);
    assert_eq!(driver.runs, vec![(ms(0), F), (ms(1_500), P)]);
}

#[tokio::test(start_paused = true)]
async fn inputs_that_ask_for_nothing_cause_no_run() {
    let d = Driving::start(upstream_config(), vec![]);
    d.send(false);
    d.at(3_000).await;
    d.send(false);
    d.at(12_000).await;
    let (result, driver) = d.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(driver.taken, vec![(ms(0), false), (ms(3_000), false)]);
    assert_eq!(driver.runs, vec![(ms(10_000), F)], "only the periodic run");
}

#[tokio::test(start_paused = true)]
async fn inputs_during_the_min_interval_are_taken_at_once_and_join_one_run() {
    let d = Driving::start(upstream_config(), vec![]);
    d.handle.request();
    for at in [100, 200, 300] {
        d.at(at).await;
        d.send(true);
    }
    d.at(5_000).await;
    let (result, driver) = d.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(driver.taken, vec![(ms(100), true), (ms(200), true), (ms(300), true)]);
    assert_eq!(driver.runs, vec![(ms(0), F), (ms(1_000), P)]);
}

#[tokio::test(start_paused = true)]
async fn the_runner_stops_once_the_handles_are_gone_and_the_inputs_ended() {
    let Driving { t0, handle, inputs, shutdown, task } = Driving::start(upstream_config(), vec![]);
    drop(handle);
    sleep_until(t0 + ms(10_500)).await;
    assert!(!task.is_finished(), "the inputs are still open");
    inputs.send(true).expect("runner takes inputs");
    drop(inputs);
    let (result, driver) = task.await.expect("runner task panicked");
    drop(shutdown);
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(driver.runs, vec![(ms(10_000), F), (ms(11_000), P)], "the pending input's run first");
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_hands_the_driver_back_with_the_error() {
    let d = Driving::start(upstream_config(), vec![Step::fatal("no permission")]);
    d.send(true);
    let (result, driver) = d.task.await.expect("runner task panicked");
    assert_eq!(result, Err(RunError::Fatal(TestError("no permission"))));
    assert_eq!(driver.runs, vec![(ms(0), F)]);
}
