//! Live notifications: `GET /api/v1/notifications/stream` (admins) pushes product changes as
//! Server-Sent Events, `{event_type, sku, name, actor, occurred_at, position}`, `id:` = the
//! position. One NATS subscription per process feeds every connection; a connection whose
//! session ends (logout) or whose token expires is closed.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::State,
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures::{Stream, StreamExt};
use mongodb::{Database, bson::doc};
use serde_json::{Value, json};
use shared::{ApiError, EventEnvelope, Role, auth::Authenticator, nats::Prefix, read_model};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Notifications a slow connection may fall behind by before it misses some.
const BUFFER: usize = 1024;
/// How often a connection checks that its session still stands.
const SESSION_CHECK: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Live {
    sender: broadcast::Sender<Value>,
    authenticator: Authenticator,
    /// Ends every stream when the service stops.
    shutdown: CancellationToken,
    /// At most a few streams per admin.
    slots: shared::http::StreamSlots,
}

impl Live {
    /// Follows `events.product.>` until `shutdown`, resubscribing after failures.
    pub fn spawn(
        nats: async_nats::Client,
        prefix: Prefix,
        db: Database,
        authenticator: Authenticator,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        let live = Self {
            sender: sender.clone(),
            authenticator,
            shutdown: shutdown.clone(),
            slots: shared::http::StreamSlots::standard(),
        };
        tokio::spawn(async move {
            let subject = prefix.subject("events.product.>");
            while !shutdown.is_cancelled() {
                let mut subscription = match nats.subscribe(subject.clone()).await {
                    Ok(subscription) => subscription,
                    Err(e) => {
                        tracing::warn!(error = %e, "live notifications cannot subscribe; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = subscription.next() => match next {
                            Some(message) => message,
                            None => break,
                        },
                    };
                    // A requeued copy is old news.
                    if shared::nats::headers::requeued_for_another(message.headers.as_ref(), None) {
                        continue;
                    }
                    let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(&message.payload)
                    else {
                        continue;
                    };
                    // The name lookup may wait on MongoDB: shutdown does not wait for it.
                    let notification = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        notification = notification(&db, &envelope) => notification,
                    };
                    // No receiver is fine: nobody is watching.
                    let _ = sender.send(notification);
                }
            }
        });
        live
    }
}

/// The product's name as the catalog's read model has it now.
async fn catalog_name(db: &Database, sku: &str) -> Option<String> {
    let names = read_model::Collections::current(db).await.ok()?;
    let product = names
        .collection::<read_model::ProductDoc>(db, read_model::PRODUCTS)
        .find_one(doc! { read_model::product_fields::ID: sku })
        .await
        .ok()??;
    Some(product.name)
}

/// What an admin sees of a product event.
async fn notification(db: &Database, envelope: &EventEnvelope) -> Value {
    let data = &envelope.data;
    let name = data["name"]
        .as_str()
        .or_else(|| data["changes"]["name"]["after"].as_str())
        .map(str::to_owned);
    let name = match name {
        Some(name) => Some(name),
        // Not in the event: the catalog's read model knows it.
        None => catalog_name(db, &envelope.aggregate_id.to_string()).await,
    };
    json!({
        "event_type": envelope.event_type,
        "sku": envelope.aggregate_id,
        "name": name,
        "actor": envelope.actor.as_ref().map(|a| json!({ "id": a.user_id, "role": a.role })),
        "occurred_at": envelope.occurred_at,
        "position": envelope.position,
    })
}

pub fn router(live: Live) -> Router {
    Router::new()
        .route("/api/v1/notifications/stream", get(stream))
        .with_state(live)
}

async fn stream(
    State(live): State<Live>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let claims = live
        .authenticator
        .authenticate(&headers)?
        .ok_or(ApiError::Unauthorized)?;
    if claims.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "live notifications are for admins".into(),
        ));
    }
    let slot = live.slots.take(claims.sub)?;
    let receiver = live.sender.subscribe();
    let state = (receiver, tokio::time::interval(SESSION_CHECK), live, claims);
    let events =
        futures::stream::unfold(state, |(mut receiver, mut tick, live, claims)| async move {
            loop {
                tokio::select! {
                    next = receiver.recv() => match next {
                        Ok(notification) => {
                            let event = Event::default()
                                .event("product")
                                .id(notification["position"].to_string())
                                .data(notification.to_string());
                            return Some((Ok(event), (receiver, tick, live, claims)));
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a live connection fell behind");
                            let event = Event::default().event("lagged").data(missed.to_string());
                            return Some((Ok(event), (receiver, tick, live, claims)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = live.shutdown.cancelled() => return None,
                    _ = tick.tick() => {
                        let expired = claims.exp <= chrono::Utc::now().timestamp();
                        if expired || live.authenticator.revocations().is_revoked(claims.sid) {
                            return None; // the session ended: close the stream
                        }
                    }
                }
            }
        });
    // The slot is held for as long as the stream is.
    let events = events.map(move |event| {
        let _held = &slot;
        event
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
