//! A review's image: its bytes, streamed from the blob store while a review lists it.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use mongodb::bson::doc;
use shared::{
    ApiError,
    http::QueryParams,
    openapi::{NotFound, ids::IMAGE},
    read_model::{self, ImageDoc, image_fields, review_fields},
};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
    },
};

use crate::http::{QueryState, ReadYourWrites, path_id};

/// An image's bytes, as stored.
struct ImageBytes;

impl PartialSchema for ImageBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for ImageBytes {}

/// The image's bytes: content-addressed, so they never change under one id.
///
/// The bytes stream from the blob store in chunks (a 5 MB image costs a reader 64 KiB of
/// memory, not 5 MB). Query parameters are refused: `?n=1`, `?n=2`, … would each be another
/// entry in the gateway's cache for the same bytes.
/// An image's bytes
///
/// Content-addressed: cached for a year (immutable).
#[utoipa::path(
    get,
    path = "/api/v1/images/{image_id}",
    description = "Who may call it: anyone. Takes no query parameters (400).",
    params(
        ("image_id" = String, Path, description = "the image (a UUID)", example = json!(IMAGE)),
        ("If-None-Match" = Option<String>, Header, description = "the ETag you have: 304 if unchanged"),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the bytes (JPEG, PNG or WebP) with their content type; ETag, Cache-Control: public, max-age=31536000, immutable",
            content(
                (ImageBytes = "image/jpeg", example = "<JPEG bytes>"),
                (ImageBytes = "image/png", example = "<PNG bytes>"),
                (ImageBytes = "image/webp", example = "<WebP bytes>"),
            )),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
pub(super) async fn image(
    State(state): State<QueryState>,
    headers: HeaderMap,
    params: QueryParams,
    Path(image_id): Path<String>,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let id = path_id::parse(&image_id, "image")?.to_string();
    let meta = state
        .breaker
        .run(async {
            state
                .collection(read_model::IMAGES)
                .await?
                .clone_with_type::<ImageDoc>()
                .find_one(doc! { image_fields::ID: &id, image_fields::REMOVED: false })
                .await
        })
        .await?
        .ok_or(ApiError::NotFound("image"))?;
    // The review is the authority: an image is served while a review that is not deleted
    // lists it (the `removed` flag can lag behind when projector instances race).
    let listed = state
        .breaker
        .run(async {
            state
                .collection(read_model::REVIEWS)
                .await?
                .find_one(doc! {
                    review_fields::ID: &meta.review_id,
                    review_fields::DELETED: false,
                    review_fields::IMAGE_IDS: &id,
                })
                .await
        })
        .await?;
    if listed.is_none() {
        return Err(ApiError::NotFound("image"));
    }
    let sha256 = meta.image.sha256.as_str();
    let content_type = meta.image.content_type.as_str();
    let tag = HeaderValue::from_str(&format!("\"{sha256}\""))
        .map_err(|e| anyhow::anyhow!("a stored image has a bad key: {e}"))?;
    let caching = [
        (header::ETAG, tag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
    ];
    let revalidated = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    if revalidated {
        return Ok((StatusCode::NOT_MODIFIED, caching).into_response());
    }
    let blob = state.blobs.open(sha256).await?.ok_or_else(|| {
        tracing::error!(image = %id, sha256, "an image's bytes are missing from the blob store");
        ApiError::NotFound("image")
    })?;
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        caching,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(blob.len)),
        ],
        Body::from_stream(blob.chunks),
    )
        .into_response())
}
