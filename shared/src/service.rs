//! What every service's `main` does the same way: stop at start-up on bad configuration with
//! one line naming the variable, and turn SIGTERM or Ctrl-C into a cancellation token that is
//! passed to every task.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;

/// Returns the configuration, or prints `error: invalid NAME: reason` and exits with 2.
pub fn config_or_exit<T>(config: Result<T, ConfigError>) -> T {
    match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

/// A token cancelled on the first SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight work");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Maps the outcome of a service's run to an exit code, logging the cause chain once.
pub fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "service stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a long-running task is started again after a failure: after a pause that doubles from
/// `first` up to `max`, and starts over from `first` when the attempt had been running for a
/// while (four times `max`) before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: std::time::Duration,
    pub max: std::time::Duration,
}

impl Backoff {
    /// 200 ms doubling to 5 s.
    pub const DEFAULT: Self = Self {
        first: std::time::Duration::from_millis(200),
        max: std::time::Duration::from_secs(5),
    };
}

/// Runs `work` until it finishes cleanly or `shutdown` is cancelled, starting it again with
/// [`Backoff::DEFAULT`] after each failure, which is logged as `what` failing.
pub async fn keep_running<F, Fut>(what: &str, shutdown: &CancellationToken, work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    keep_running_with(what, shutdown, Backoff::DEFAULT, work).await;
}

/// [`keep_running`] with its own backoff. Whatever a failure should also do (a metric, a lag
/// report, resetting a cache) belongs in `work`, before it returns the error.
pub async fn keep_running_with<F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    backoff: Backoff,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut pause = backoff.first;
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        match work().await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying"),
        }
        if started.elapsed() > backoff.max * 4 {
            pause = backoff.first; // it ran fine for a while: start over
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(backoff.max);
    }
}
