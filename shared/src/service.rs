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

/// Runs `work` until it finishes cleanly or `shutdown` is cancelled, starting it again with
/// backoff (200 ms doubling to 5 s) after each failure, which is logged as `what` failing.
pub async fn keep_running<F, Fut>(what: &str, shutdown: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = std::time::Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match work().await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
    }
}
