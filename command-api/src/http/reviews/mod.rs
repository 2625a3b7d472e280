//! Publishers writing reviews (their own; admins may edit or delete any) and attaching images.

use axum::{
    extract::{DefaultBodyLimit, Multipart, Path, State, multipart::MultipartRejection},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::{
    ApiError, Role,
    events::ImageMeta,
    http::ApiJson,
    openapi::{
        Conflict, Forbidden, NotFound, PayloadTooLarge, RateLimited, UnsupportedMediaType,
        ValidationFailed, VersionMismatch,
        ids::{IMAGE, REVIEW, SKU},
    },
    problem::FieldError,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState, Caller,
    answers::{AttachedImage, ReviewRef, Stamped},
    command::{self, IdempotencyHeader, IfMatch, Written, if_match},
    rejections::RegionNotAllowed,
};
use crate::{
    blob_gc,
    commands::{products, reviews, users},
    domain::{
        review::{Draft, Edit, MAX_IMAGES, ReviewCommand, ReviewRejection},
        values::{Fields, parse_text},
    },
    images,
};

mod uploads;

pub fn router(max_image_bytes: u64) -> OpenApiRouter<AppState> {
    // The multipart body may exceed the JSON limit by the image limit and some framing; the
    // file part itself is held to `MAX_IMAGE_BYTES` while it streams.
    let upload_limit = usize::try_from(max_image_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let (schemas, paths, attach) = routes!(uploads::attach_image);
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(edit, remove))
        .routes((
            schemas,
            paths,
            attach.layer(DefaultBodyLimit::max(upload_limit)),
        ))
        .routes(routes!(uploads::remove_image))
}

/// A new review: every field is required.
// Read with every field optional and loosely typed, so that `publish` names each missing or
// bad one in its 422; the schema says what a valid body is.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct NewReview {
    #[schema(value_type = Uuid, required = true, example = json!(SKU))]
    product_sku: Option<String>,
    #[schema(
        value_type = String,
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = "\\S",
        example = "Sharp and small"
    )]
    title: Option<String>,
    #[schema(
        value_type = String,
        required = true,
        min_length = 1,
        max_length = 20000,
        pattern = "\\S",
        example = "The lens is superb."
    )]
    body: Option<String>,
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 5, example = 5)]
    rating: Option<Value>,
}

/// An edit: any of the fields but `product_sku`.
// Read loosely, as `NewReview` is, for `edit`'s 422.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct ReviewEdit {
    // Refused with a 422 when sent (a review stays about its product): not documented.
    #[schema(ignore)]
    product_sku: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "\\S",
        example = "Sharp, small, loud"
    )]
    title: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "\\S",
        example = "The lens is superb; the shutter less so."
    )]
    body: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 5, example = 4)]
    rating: Option<Value>,
}

/// A whole number from 1 to 5; `5.0` is 5, as JSON Schema's `integer` has it.
fn parse_rating(raw: &Value) -> Result<u8, String> {
    let whole = raw
        .as_f64()
        .filter(|r| r.fract() == 0.0 && (1.0..=5.0).contains(r));
    raw.as_u64()
        .or(whole.map(|r| r as u64))
        .filter(|r| (1..=5).contains(r))
        .and_then(|r| u8::try_from(r).ok())
        .ok_or_else(|| "must be a whole number from 1 to 5".to_owned())
}

fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}

fn answer(
    status: StatusCode,
    id: Uuid,
    version: i64,
    appended: Option<&eventstore::Appended>,
) -> Written {
    Written::new(status, ReviewRef { id }).appended(appended, version)
}

/// Publish a review
#[utoipa::path(
    post,
    path = "/api/v1/reviews",
    description = "Who may call it: a publisher (or an admin) of a region in `PUBLISH_REGIONS`.",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = NewReview,
    responses(
        (status = 201, description = "published; `Location` is the review", body = Stamped<ReviewRef>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(RegionNotAllowed)),
        (status = 409, response = inline(Conflict)),
        (status = 422, response = inline(ValidationFailed)),
    )
)]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<NewReview>,
) -> Result<Response, ApiError> {
    if !matches!(caller.role, Role::Publisher | Role::Admin) {
        return Err(ApiError::Forbidden("only publishers write reviews".into()));
    }
    let mut fields = Fields::default();
    let sku = fields.required("product_sku", body.product_sku.as_deref(), |v| {
        Uuid::parse_str(v).map_err(|_| "must be a UUID".to_owned())
    });
    let title = fields.required("title", body.title.as_deref(), |v| parse_text(v, 1, 200));
    let text = fields.required("body", body.body.as_deref(), |v| parse_text(v, 1, 20_000));
    let rating = fields.required("rating", body.rating.as_ref(), parse_rating);
    fields.finish()?;
    let (Some(sku), Some(title), Some(text), Some(rating)) = (sku, title, text, rating) else {
        return Err(ApiError::Validation(Vec::new()));
    };

    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    command::run(&state.pool, key, async |tx| {
        let author = users::load(&mut *tx, caller.user_id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let region = author
            .region
            .filter(|r| state.publish_regions.contains(r))
            .ok_or(RegionNotAllowed)?;
        let product = products::load(&mut *tx, sku).await?;
        if product.is_none_or(|p| p.deleted) {
            return Err(ApiError::Validation(vec![FieldError::new(
                "product_sku",
                "no such product",
            )]));
        }
        let id = Uuid::now_v7();
        let draft = Draft {
            product_sku: sku,
            region,
            title,
            body: text,
            rating,
        };
        let (version, appended) = reviews::execute(
            &mut *tx,
            id,
            None,
            caller.actor(),
            ReviewCommand::Publish(draft),
        )
        .await?;
        let written = answer(StatusCode::CREATED, id, version, appended.as_ref())
            .location(format!("/api/v1/reviews/{id}"));
        Ok(written)
    })
    .await
}

/// Edit a review (your own; admins any)
#[utoipa::path(
    put,
    path = "/api/v1/reviews/{id}",
    description = "Who may call it: its author or an admin.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW)),
        IfMatch, IdempotencyHeader,
    ),
    request_body = ReviewEdit,
    responses(
        (status = 200, description = "edited", body = Stamped<ReviewRef>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
        (status = 409, response = inline(Conflict)),
        (status = 412, response = inline(VersionMismatch)),
        (status = 422, response = inline(ValidationFailed)),
    )
)]
async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<ReviewEdit>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "review")?;
    let expected = if_match(&headers)?;
    let mut fields = Fields::default();
    if body.product_sku.is_some() {
        fields.push("product_sku", "cannot be changed");
    }
    let change = Edit {
        title: fields.optional("title", body.title.as_deref(), |v| parse_text(v, 1, 200)),
        body: fields.optional("body", body.body.as_deref(), |v| parse_text(v, 1, 20_000)),
        rating: fields.optional("rating", body.rating.as_ref(), parse_rating),
    };
    fields.finish()?;
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    command::run(&state.pool, key, async |tx| {
        let (version, appended) = reviews::execute(
            &mut *tx,
            id,
            expected,
            caller.actor(),
            ReviewCommand::Edit(change),
        )
        .await?;
        Ok(answer(StatusCode::OK, id, version, appended.as_ref()))
    })
    .await
}

/// Delete a review
#[utoipa::path(
    delete,
    path = "/api/v1/reviews/{id}",
    description = "Who may call it: its author or an admin.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW)),
        IfMatch,
    ),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
        (status = 412, response = inline(VersionMismatch)),
    )
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "review")?;
    let expected = if_match(&headers)?;
    run(&state, &caller, id, expected, ReviewCommand::Delete, |_| {
        Written::no_content()
    })
    .await
}

/// Runs a command without an idempotency key; `written` shapes the answer.
async fn run(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    expected: Option<i64>,
    review_command: ReviewCommand,
    written: impl FnOnce(i64) -> Written,
) -> Result<Response, ApiError> {
    command::run(&state.pool, None, async |tx| {
        let (version, appended) =
            reviews::execute(&mut *tx, id, expected, caller.actor(), review_command).await?;
        Ok(written(version).appended(appended.as_ref(), version))
    })
    .await
}
