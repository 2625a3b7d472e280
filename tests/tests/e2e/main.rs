//! End-to-end tests: one binary, real PostgreSQL, NATS and MongoDB-wire server.

// Test helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used)]

pub mod catalog;
mod conformance;
mod ctl;
mod dead_letters;
mod deploy;
mod directory;
mod docs_page;
mod event_log;
mod gateway;
mod hardening;
mod identity;
mod live;
mod mail;
mod nats_auth;
mod operations;
mod products;
mod relay_resilience;
mod relay_torture;
mod reviews;
mod services;
mod store;
mod versioning;
mod views;

use std::collections::BTreeMap;

use eventstore::NewEvent;
use shared::events::{FieldChange, ProductCreated, ProductEvent, ProductUpdated};

/// A `ProductCreated` ready to append.
pub fn product_created(name: &str) -> NewEvent {
    NewEvent::from_domain(&ProductEvent::ProductCreated(ProductCreated {
        name: name.to_owned(),
        brand: "Leica".to_owned(),
        price: "5995.00".to_owned(),
        currency: "USD".to_owned(),
        description: String::new(),
        specs: BTreeMap::new(),
    }))
    .unwrap()
}

/// A `ProductUpdated` changing the price.
pub fn price_changed(before: &str, after: &str) -> NewEvent {
    let change = FieldChange {
        before: before.into(),
        after: after.into(),
    };
    NewEvent::from_domain(&ProductEvent::ProductUpdated(ProductUpdated {
        changes: BTreeMap::from([("price".to_owned(), change)]),
    }))
    .unwrap()
}
