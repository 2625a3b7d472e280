//! Images of a review: attaching one (multipart, streamed, its metadata removed) and
//! removing one.

use super::*;

/// The upload: one part named `file`.
#[derive(ToSchema)]
// Only documents the body: `attach_image` streams the `file` part itself, so that it can
// refuse it (413) as soon as it passes `MAX_IMAGE_BYTES`.
#[allow(dead_code)]
pub(super) struct ImageUpload {
    /// A JPEG, PNG or WebP image (judged by its content), at most `MAX_IMAGE_BYTES`.
    #[schema(value_type = String, format = Binary, example = "<the image's bytes>")]
    file: Vec<u8>,
}

/// Attach an image
///
/// Multipart, field `file`; JPEG, PNG or WebP; its metadata (EXIF, GPS) is removed. At most 10
/// per review.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/images",
    description = "Who may call it: its author or an admin.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW))),
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "attached", body = Stamped<AttachedImage>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 415, response = inline(UnsupportedMediaType)),
        (status = 422, response = inline(ValidationFailed)),
        (status = 429, response = inline(RateLimited)),
    )
)]
pub(super) async fn attach_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "review")?;
    // Refuse before reading the upload when the answer is known already.
    {
        let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
        let review = reviews::load(&mut tx, id).await?;
        let review = review
            .filter(|r| !r.deleted)
            .ok_or(ApiError::NotFound("review"))?;
        if review.author_id != caller.user_id && caller.role != Role::Admin {
            return Err(ReviewRejection::NotYours.into());
        }
        if review.images.len() >= MAX_IMAGES {
            return Err(ReviewRejection::TooManyImages.into());
        }
        blob_gc::check_quota(&mut tx, state.upload_quota, caller.user_id, 0).await?;
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("expected multipart/form-data: {e}"))
    })?;
    let bytes = read_file_field(&mut multipart, state.max_image_bytes).await?;
    let not_an_image =
        || ApiError::UnsupportedMediaType("the file is not a JPEG, PNG or WebP image".into());
    let kind = images::inspect(&bytes).ok_or_else(not_an_image)?.kind;
    // What is stored and served is the image without its EXIF/GPS and other metadata.
    let bytes = images::strip_metadata(bytes, kind).ok_or_else(not_an_image)?;
    let info = images::inspect(&bytes).ok_or_else(not_an_image)?;
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let size = bytes.len() as u64;
    blob_gc::store_upload(
        &state.pool,
        &state.blobs,
        state.upload_quota,
        caller.user_id,
        &sha256,
        bytes,
    )
    .await?;
    let image = ImageMeta {
        image_id: Uuid::now_v7(),
        sha256,
        content_type: info.kind.content_type().to_owned(),
        bytes: size,
        width: info.width,
        height: info.height,
    };
    let body = AttachedImage {
        image_id: image.image_id,
        url: format!("/api/v1/images/{}", image.image_id),
        content_type: image.content_type.clone(),
        bytes: image.bytes,
        width: image.width,
        height: image.height,
    };
    run(
        &state,
        &caller,
        id,
        None,
        ReviewCommand::AttachImage(image),
        |_| Written::new(StatusCode::CREATED, body),
    )
    .await
}

/// The bytes of the `file` part, refused with 413 as soon as they pass `limit`.
async fn read_file_field(multipart: &mut Multipart, limit: u64) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::InvalidParameter(format!("the multipart body does not read: {e}"))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
    Err(ApiError::Validation(vec![FieldError::new(
        "file",
        "is required",
    )]))
}

/// Remove an image from a review
#[utoipa::path(
    delete,
    path = "/api/v1/reviews/{id}/images/{image_id}",
    description = "Who may call it: its author or an admin.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW)),
        ("image_id" = String, Path, description = "the image (a UUID)", example = json!(IMAGE)),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
    )
)]
pub(super) async fn remove_image(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, image_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "review")?;
    let image_id = parse_id(&image_id, "image")?;
    run(
        &state,
        &caller,
        id,
        None,
        ReviewCommand::RemoveImage(image_id),
        |_| Written::no_content(),
    )
    .await
}
