//! The skeleton of every JetStream reading loop (the projector's consumer, the notifier's view
//! tally): wait for a message, then take in one batch whatever else has already arrived, so a
//! busy stream is applied in large batches and a quiet one without delay. Restarts after a
//! failure go through [`crate::service::keep_running`].

use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

/// The next batch of at most `max` messages: waits for the first (`None` once `shutdown` is
/// cancelled), then adds those already delivered, without waiting for more. An error, or the
/// end of `messages` (`what` names it), ends the loop so that it is restarted.
pub async fn next_batch<S, M, E>(
    messages: &mut S,
    max: usize,
    shutdown: &CancellationToken,
    what: &str,
) -> anyhow::Result<Option<Vec<M>>>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let first = tokio::select! {
        _ = shutdown.cancelled() => return Ok(None),
        next = messages.next() => match next {
            Some(message) => message?,
            None => anyhow::bail!("{what} ended"),
        },
    };
    let mut batch = vec![first];
    while batch.len() < max {
        match messages.next().now_or_never() {
            Some(Some(message)) => batch.push(message?),
            Some(None) => anyhow::bail!("{what} ended"),
            None => break,
        }
    }
    Ok(Some(batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Item = Result<u32, std::io::Error>;

    #[tokio::test]
    async fn a_batch_takes_what_has_arrived_up_to_the_limit() {
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Item>();
        let mut messages = receiver;
        for n in 0..5 {
            sender.unbounded_send(Ok(n)).unwrap();
        }
        let shutdown = CancellationToken::new();
        let batch = next_batch(&mut messages, 3, &shutdown, "test")
            .await
            .unwrap();
        assert_eq!(batch, Some(vec![0, 1, 2]));
        let batch = next_batch(&mut messages, 3, &shutdown, "test")
            .await
            .unwrap();
        assert_eq!(
            batch,
            Some(vec![3, 4]),
            "what has arrived, without waiting for a third"
        );
        shutdown.cancel();
        let batch = next_batch(&mut messages, 3, &shutdown, "test")
            .await
            .unwrap();
        assert_eq!(batch, None, "shutdown ends the wait");
        drop(sender);
        let running = CancellationToken::new();
        let ended = next_batch(&mut messages, 3, &running, "the test stream").await;
        assert_eq!(ended.unwrap_err().to_string(), "the test stream ended");
    }
}
