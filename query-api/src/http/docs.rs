//! query-api's OpenAPI document (`/openapi.json`, rendered at `/docs`): every endpoint, with
//! example answers.

use serde_json::{Value, json};
use shared::openapi::{
    Endpoint, Param, document, header,
    ids::{IMAGE, REVIEW, SKU, USER},
    ok, path, problem, query, typed,
};

fn product() -> Value {
    json!({
        "sku": SKU, "name": "Leica Q3", "brand": "Leica", "price": "5995.00", "currency": "USD",
        "description": "Full-frame compact", "specs": { "sensor": "60 MP" }, "views": 1204,
        "review_count": 12, "rating_avg": 4.5, "version": 3,
        "created_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-21T10:00:00Z",
    })
}

fn review() -> Value {
    json!({
        "id": REVIEW, "product_sku": SKU, "author": { "id": USER, "display_name": "Ana" },
        "title": "Sharp and small", "body": "The lens is superb.", "rating": 5, "region": "south-america",
        "images": [{ "image_id": IMAGE, "url": format!("/api/v1/images/{IMAGE}"), "content_type": "image/jpeg", "bytes": 48213, "width": 1200, "height": 800 }],
        "version": 2, "created_at": "2026-11-20T18:00:00Z", "updated_at": "2026-11-21T08:00:00Z",
    })
}

fn page(item: Value) -> Value {
    json!({ "items": [item], "next_cursor": "eyJrIjpbIjIwMjYiXX0.c2ln" })
}

fn paging() -> [Param; 2] {
    [
        query("limit", "1 to 100, default 20", "20"),
        query(
            "cursor",
            "from the previous page's next_cursor",
            "eyJrIjpbIjIwMjYiXX0.c2ln",
        ),
    ]
}

fn consistency() -> [Param; 2] {
    [
        header(
            "X-Min-Position",
            "wait until the read models have applied this position (read your writes)",
            "1042",
        ),
        header(
            "X-Max-Wait-Ms",
            "how long to wait for it, at most 5000 (default 2000)",
            "2000",
        ),
    ]
}

fn with(mut params: Vec<Param>, more: impl IntoIterator<Item = Param>) -> Vec<Param> {
    params.extend(more);
    params
}

pub fn spec() -> Value {
    let bad = || {
        problem(
            400,
            "invalid_parameter",
            "limit: must be a whole number from 1 to 100",
        )
    };
    let lagging = || {
        problem(
            504,
            "projection_lagging",
            "The read models have not reached X-Min-Position yet",
        )
    };
    let not_found = || problem(404, "not_found", "No such resource");
    let forbidden = || problem(403, "forbidden", "Only admins may read this");
    let limited = || problem(429, "rate_limited", "Too many requests; try again later");
    let user = json!({ "id": USER, "username": "ana", "display_name": "Ana", "role": "publisher", "region": "south-america" });
    let admin_user = json!({
        "id": USER, "username": "ana", "email": "ana@example.com", "display_name": "Ana", "role": "admin",
        "region": "south-america", "is_superuser": false, "created_at": "2026-11-21T10:00:00Z",
    });
    let endpoints = vec![
        Endpoint {
            method: "GET",
            path: "/api/v1/products",
            summary: "Browse the catalog: filters, search, sorts, pages",
            who: "anyone",
            params: with(
                vec![
                    query("brand", "exactly this brand (any case)", "Leica"),
                    query(
                        "q",
                        "words in the name, brand or description (matched literally)",
                        "compact",
                    ),
                    query("min_price", "at least this price", "1000.00"),
                    query("max_price", "at most this price", "6000.00"),
                    query(
                        "sort",
                        "newest, price_asc, price_desc, name or rating",
                        "price_asc",
                    ),
                ],
                paging().into_iter().chain(consistency()),
            ),
            body: None,
            answers: vec![
                ok(
                    200,
                    "a page of products (ETag, Cache-Control)",
                    page(product()),
                ),
                bad(),
                lagging(),
                limited(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/products/{sku}",
            summary: "One product (an anonymous read counts a view)",
            who: "anyone",
            params: with(
                vec![
                    path("sku", "the product", SKU),
                    header(
                        "If-None-Match",
                        "the ETag you have: 304 if unchanged",
                        "\"p-3\"",
                    ),
                ],
                consistency(),
            ),
            body: None,
            answers: vec![
                ok(200, "the product", product()),
                not_found(),
                lagging(),
                limited(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/products/{sku}/history",
            summary: "Every change to a product",
            who: "admin",
            params: with(vec![path("sku", "the product", SKU)], consistency()),
            body: None,
            answers: vec![
                ok(
                    200,
                    "the changes, oldest first",
                    json!({ "items": [{ "position": 1042, "version": 2, "event_type": "ProductUpdated", "occurred_at": "2026-11-21T10:00:00Z", "actor": { "id": USER, "role": "admin" }, "changes": { "price": { "before": "5995.00", "after": "5795.00" } } }] }),
                ),
                forbidden(),
                not_found(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/products/{sku}/reviews",
            summary: "A product's reviews",
            who: "anyone",
            params: with(vec![path("sku", "the product", SKU)], paging()),
            body: None,
            answers: vec![ok(200, "a page of reviews", page(review())), not_found()],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/reviews",
            summary: "Browse reviews",
            who: "anyone",
            params: with(
                vec![
                    query("product_sku", "of one product", SKU),
                    query("author_id", "by one author", USER),
                    query("region", "from one region", "south-america"),
                    query("min_rating", "at least this rating (1 to 5)", "4"),
                    query(
                        "q",
                        "words in the title or body (matched literally)",
                        "lens",
                    ),
                    query("sort", "newest or rating", "newest"),
                ],
                paging().into_iter().chain(consistency()),
            ),
            body: None,
            answers: vec![
                ok(200, "a page of reviews", page(review())),
                bad(),
                limited(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/reviews/{id}",
            summary: "One review",
            who: "anyone",
            params: with(vec![path("id", "the review", REVIEW)], consistency()),
            body: None,
            answers: vec![ok(200, "the review", review()), not_found()],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/images/{image_id}",
            summary: "An image's bytes",
            who: "anyone",
            params: vec![path("image_id", "the image", IMAGE)],
            body: None,
            answers: vec![
                typed(
                    200,
                    "the bytes (JPEG, PNG or WebP), with their content type; cached for a year (immutable)",
                    "image/jpeg",
                    json!("<binary>"),
                ),
                problem(
                    400,
                    "invalid_parameter",
                    "unknown parameter \"n\"; this endpoint takes no parameters",
                ),
                not_found(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/users/{id}",
            summary: "A public profile",
            who: "anyone",
            params: vec![path("id", "the user", USER)],
            body: None,
            answers: vec![ok(200, "the profile", user), not_found()],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/users",
            summary: "Every user",
            who: "admin",
            params: with(
                vec![query("role", "publisher, analyst or admin", "analyst")],
                paging(),
            ),
            body: None,
            answers: vec![
                ok(200, "a page of users", page(admin_user.clone())),
                forbidden(),
            ],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/admins",
            summary: "Every admin",
            who: "admin",
            params: paging().to_vec(),
            body: None,
            answers: vec![ok(200, "a page of admins", page(admin_user)), forbidden()],
        },
        Endpoint {
            method: "GET",
            path: "/api/v1/reports/product-views",
            summary: "Anonymous product views per hour or day",
            who: "admin or analyst",
            params: vec![
                query("from", "from this time (RFC 3339)", "2026-11-20T00:00:00Z"),
                query("to", "until this time (RFC 3339)", "2026-11-21T00:00:00Z"),
                query("bucket", "hour or day", "day"),
                query("sku", "one product", SKU),
            ],
            body: None,
            answers: vec![
                ok(
                    200,
                    "view counts per product and bucket",
                    json!({ "items": [{ "sku": SKU, "bucket_start": "2026-11-20T00:00:00Z", "views": 311 }] }),
                ),
                bad(),
                forbidden(),
            ],
        },
    ];
    document(
        "CamReviews query API",
        "Readers browse the catalog and its reviews here. Answers carry ETag and Cache-Control; \
         send X-Min-Position to read your own writes. Errors are application/problem+json with a \
         stable `code`.",
        8082,
        &endpoints,
    )
}
