//! A service running in-process on a random port, stopped gracefully or killed.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Running {
    pub port: u16,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn spawn<F, Fut>(port: u16, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            port,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The value of the first line of the service's `/metrics` page that starts with
    /// `series` (a name, or a name and its first labels), 0 when there is none.
    pub async fn metric(&self, series: &str) -> f64 {
        let page = reqwest::get(self.url("/metrics"))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap_or_default();
        page.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends the shutdown signal and waits (bounded) for a clean exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .map_err(|_| anyhow::anyhow!("the service did not stop within 10s"))??
    }
}
