//! command-api's OpenAPI document (`/openapi.json`, rendered at `/docs`): every endpoint, with
//! example requests and answers.

use serde_json::{Value, json};
use shared::openapi::{
    Endpoint, document, empty, header,
    ids::{IMAGE, REVIEW, SKU, USER},
    ok, path, problem, query, typed,
};

fn user() -> Value {
    json!({
        "id": USER, "username": "ana", "email": "ana@example.com", "display_name": "Ana",
        "role": "publisher", "region": "south-america", "is_superuser": false,
        "created_at": "2026-11-21T10:00:00Z",
    })
}

fn written(id: &str, key: &str) -> Value {
    json!({ key: id, "version": 2, "position": 1042 })
}

fn envelope() -> Value {
    json!({
        "event_id": "0192f5a8-4444-7c3d-9f10-3a4b5c6d7e8f", "event_type": "ProductUpdated",
        "schema_version": 1, "aggregate_type": "product", "aggregate_id": SKU,
        "aggregate_version": 2, "position": 1042, "occurred_at": "2026-11-21T10:00:00Z",
        "actor": { "user_id": USER, "role": "admin" },
        "correlation_id": "0192f5a8-5555-7c3d-9f10-3a4b5c6d7e8f", "causation_id": null,
        "data": { "changes": { "price": { "before": "1299.99", "after": "1199.00" } } },
    })
}

fn if_match() -> shared::openapi::Param {
    header(
        "If-Match",
        "the version you read (`\"3\"`); 412 if it moved on",
        "\"3\"",
    )
}

fn idempotency() -> shared::openapi::Param {
    header(
        "Idempotency-Key",
        "repeat a write safely: the same key answers the same (24 hours)",
        "0192f5a8-6666-7c3d-9f10-3a4b5c6d7e8f",
    )
}

pub fn spec() -> Value {
    let invalid = || problem(422, "validation_failed", "Some fields are invalid");
    let unauthorized = || problem(401, "unauthorized", "Sign in first");
    let forbidden = || problem(403, "forbidden", "Only admins may do this");
    let not_found = || problem(404, "not_found", "No such resource");
    let limited = || problem(429, "rate_limited", "Too many requests; try again later");
    let busy = || {
        problem(
            503,
            "unavailable",
            "Password checks are at capacity; try again shortly",
        )
    };
    let endpoints = vec![
        Endpoint {
            method: "POST",
            path: "/api/v1/auth/register",
            summary: "Register as a publisher",
            who: "anyone",
            params: vec![idempotency()],
            body: Some(
                json!({ "username": "ana", "email": "ana@example.com", "password": "a-long-password", "display_name": "Ana", "region": "south-america" }),
            ),
            answers: vec![
                ok(201, "the new user", user()),
                problem(409, "username_taken", "That username is taken"),
                invalid(),
                limited(),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/auth/login",
            summary: "Sign in",
            who: "anyone",
            params: vec![],
            body: Some(json!({ "username": "ana", "password": "a-long-password" })),
            answers: vec![
                ok(
                    200,
                    "a token pair",
                    json!({ "access_token": "eyJhbGciOiJFZERTQSJ9…", "refresh_token": "r1.3f9a…", "token_type": "Bearer", "expires_in": 900 }),
                ),
                problem(401, "invalid_credentials", "Wrong username or password"),
                limited(),
                busy(),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/auth/refresh",
            summary: "Swap a refresh token for a new pair",
            who: "anyone",
            params: vec![],
            body: Some(json!({ "refresh_token": "r1.3f9a…" })),
            answers: vec![
                ok(
                    200,
                    "a new token pair; the old refresh token is revoked",
                    json!({ "access_token": "eyJhbGciOiJFZERTQSJ9…", "refresh_token": "r1.77c2…", "token_type": "Bearer", "expires_in": 900 }),
                ),
                problem(
                    401,
                    "refresh_token_reused",
                    "This refresh token was used before; the session is closed",
                ),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/auth/logout",
            summary: "Sign out: the session ends everywhere",
            who: "signed in",
            params: vec![],
            body: Some(json!({ "refresh_token": "r1.77c2…" })),
            answers: vec![empty(204, "signed out"), unauthorized()],
        },
        Endpoint {
            method: "PUT",
            path: "/api/v1/users/me",
            summary: "Change your own profile or password",
            who: "signed in",
            params: vec![idempotency()],
            body: Some(
                json!({ "display_name": "Ana P.", "password": "a-new-long-password", "current_password": "a-long-password" }),
            ),
            answers: vec![
                ok(
                    200,
                    "your user; a new password ends your other sessions",
                    user(),
                ),
                invalid(),
                unauthorized(),
                busy(),
            ],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/users/me/sessions",
            summary: "Log out everywhere: every session of yours ends, this one too",
            who: "signed in",
            params: vec![],
            body: None,
            answers: vec![empty(204, "every session ended"), unauthorized()],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/users/{id}/sessions",
            summary: "End every session of a user",
            who: "admin",
            params: vec![path("id", "the user", USER)],
            body: None,
            answers: vec![
                empty(204, "every session of theirs ended"),
                problem(
                    403,
                    "superuser_protected",
                    "Only the superuser ends the superuser's sessions",
                ),
                not_found(),
            ],
        },
        Endpoint {
            method: "PUT",
            path: "/api/v1/users/{id}/role",
            summary: "Grant or take back a role",
            who: "admin",
            params: vec![path("id", "the user", USER), idempotency()],
            body: Some(json!({ "role": "analyst" })),
            answers: vec![
                ok(200, "the user", user()),
                problem(
                    403,
                    "superuser_protected",
                    "The superuser cannot be changed",
                ),
                not_found(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/.well-known/jwks.json",
            summary: "The keys tokens are signed with",
            who: "anyone",
            params: vec![],
            body: None,
            answers: vec![ok(
                200,
                "a JWK set",
                json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] }),
            )],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/admins",
            summary: "Create an admin",
            who: "admin",
            params: vec![idempotency()],
            body: Some(
                json!({ "username": "bruno", "email": "bruno@example.com", "password": "a-long-password", "display_name": "Bruno" }),
            ),
            answers: vec![
                ok(201, "the new admin", user()),
                problem(409, "username_taken", "That username is taken"),
                forbidden(),
            ],
        },
        Endpoint {
            method: "PUT",
            path: "/api/v1/admins/{id}",
            summary: "Change an admin",
            who: "admin",
            params: vec![path("id", "the admin", USER), idempotency()],
            body: Some(json!({ "display_name": "Bruno R.", "role": "admin" })),
            answers: vec![
                ok(200, "the admin", user()),
                problem(
                    403,
                    "superuser_protected",
                    "The superuser cannot be changed",
                ),
                not_found(),
            ],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/admins/{id}",
            summary: "Remove an admin (they can no longer sign in)",
            who: "admin",
            params: vec![path("id", "the admin", USER)],
            body: None,
            answers: vec![
                empty(204, "removed"),
                problem(
                    403,
                    "superuser_protected",
                    "The superuser cannot be changed",
                ),
                not_found(),
            ],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/products",
            summary: "Add a product to the catalog",
            who: "admin",
            params: vec![idempotency()],
            body: Some(
                json!({ "name": "Leica Q3", "brand": "Leica", "price": "5995.00", "currency": "USD", "description": "Full-frame compact", "specs": { "sensor": "60 MP" } }),
            ),
            answers: vec![
                ok(201, "created (`X-Event-Position` set)", written(SKU, "sku")),
                invalid(),
                forbidden(),
            ],
        },
        Endpoint {
            method: "PUT",
            path: "/api/v1/products/{sku}",
            summary: "Change any subset of a product's fields",
            who: "admin",
            params: vec![path("sku", "the product", SKU), if_match(), idempotency()],
            body: Some(json!({ "price": "5795.00" })),
            answers: vec![
                ok(200, "changed", written(SKU, "sku")),
                problem(
                    412,
                    "version_mismatch",
                    "The product changed since you read it",
                ),
                not_found(),
                invalid(),
            ],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/products/{sku}",
            summary: "Remove a product",
            who: "admin",
            params: vec![path("sku", "the product", SKU), if_match()],
            body: None,
            answers: vec![empty(204, "removed (`X-Event-Position` set)"), not_found()],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/reviews",
            summary: "Publish a review",
            who: "publisher in an allowed region",
            params: vec![idempotency()],
            body: Some(
                json!({ "product_sku": SKU, "title": "Sharp and small", "body": "The lens is superb.", "rating": 5 }),
            ),
            answers: vec![
                ok(201, "published", written(REVIEW, "id")),
                problem(
                    403,
                    "region_not_allowed",
                    "Publishers from your region may not write reviews",
                ),
                invalid(),
            ],
        },
        Endpoint {
            method: "PUT",
            path: "/api/v1/reviews/{id}",
            summary: "Edit a review (your own; admins any)",
            who: "its author or an admin",
            params: vec![path("id", "the review", REVIEW), if_match()],
            body: Some(json!({ "rating": 4 })),
            answers: vec![
                ok(200, "edited", written(REVIEW, "id")),
                forbidden(),
                not_found(),
            ],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/reviews/{id}",
            summary: "Delete a review",
            who: "its author or an admin",
            params: vec![path("id", "the review", REVIEW)],
            body: None,
            answers: vec![empty(204, "deleted"), forbidden(), not_found()],
        },
        Endpoint {
            method: "POST",
            path: "/api/v1/reviews/{id}/images",
            summary: "Attach an image (multipart, field `file`; JPEG, PNG or WebP; its metadata is removed)",
            who: "its author or an admin",
            params: vec![path("id", "the review", REVIEW)],
            body: None,
            answers: vec![
                ok(
                    201,
                    "attached",
                    json!({ "image_id": IMAGE, "url": format!("/api/v1/images/{IMAGE}"), "content_type": "image/jpeg", "bytes": 48213, "width": 1200, "height": 800, "version": 3, "position": 1050 }),
                ),
                problem(413, "payload_too_large", "The image is larger than allowed"),
                problem(
                    415,
                    "unsupported_media_type",
                    "Only JPEG, PNG and WebP images",
                ),
                problem(
                    429,
                    "rate_limited",
                    "Your hourly upload quota is used up; try again later",
                ),
            ],
        },
        Endpoint {
            method: "DELETE",
            path: "/api/v1/reviews/{id}/images/{image_id}",
            summary: "Remove an image from a review",
            who: "its author or an admin",
            params: vec![
                path("id", "the review", REVIEW),
                path("image_id", "the image", IMAGE),
            ],
            body: None,
            answers: vec![empty(204, "removed"), not_found()],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/events",
            summary: "The event log: a page, or every match as NDJSON (`Accept: application/x-ndjson`)",
            who: "admin or analyst",
            params: vec![
                query("after", "start after this position", "1000"),
                query("limit", "1 to 1000, default 20", "100"),
                query(
                    "type",
                    "event types, comma-separated",
                    "ProductCreated,ProductUpdated",
                ),
                query("aggregate_type", "product, review or user", "product"),
                query("aggregate_id", "one aggregate", SKU),
                query(
                    "since",
                    "occurred at or after (RFC 3339)",
                    "2026-11-01T00:00:00Z",
                ),
                query(
                    "until",
                    "occurred before (RFC 3339)",
                    "2026-12-01T00:00:00Z",
                ),
            ],
            body: None,
            answers: vec![
                ok(
                    200,
                    "envelopes in position order (`X-Event-Horizon`: the settled position read up to)",
                    json!({ "items": [envelope()], "next_after": 1042, "next_cursor": "1042" }),
                ),
                typed(
                    200,
                    "with Accept: application/x-ndjson, one envelope per line",
                    "application/x-ndjson",
                    envelope(),
                ),
                problem(
                    400,
                    "invalid_parameter",
                    "limit: must be a whole number from 1 to 1000",
                ),
                forbidden(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/events/stream",
            summary: "Follow the event log live (Server-Sent Events; `id:` is the position)",
            who: "admin or analyst",
            params: vec![
                header(
                    "Last-Event-ID",
                    "resume after this position (wins over `after`)",
                    "1042",
                ),
                query(
                    "after",
                    "start after this position; default: only new events",
                    "0",
                ),
                query("type", "event types, comma-separated", "ProductUpdated"),
                query("aggregate_type", "product, review or user", "product"),
            ],
            body: None,
            answers: vec![
                typed(
                    200,
                    "an endless stream of envelopes",
                    "text/event-stream",
                    envelope(),
                ),
                forbidden(),
            ],
        },
    ];
    document(
        "CamReviews command API",
        "Publishers write reviews and admins manage the catalog here; every change is an event. \
         Errors are application/problem+json with a stable `code`. Writes answer with `version` \
         and `position` (also `X-Event-Position`); pass the position to the query API as \
         `X-Min-Position` to read your own writes.",
        8081,
        &endpoints,
    )
}
