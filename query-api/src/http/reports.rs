//! `GET /api/v1/reports/product-views?from&to&bucket=hour|day&sku` (admins and analysts):
//! anonymous views per product and hour or day, from the notifier's hourly tallies.

use std::collections::BTreeMap;

use axum::{extract::State, http::HeaderMap, response::Response};
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use serde::Serialize;
use shared::{
    ApiError, Role,
    http::QueryParams,
    openapi::{Forbidden, Unauthorized, ids::SKU},
    read_model::{self, HourlyViewsDoc, views_fields},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{QueryState, ReadYourWrites, Reader, caching::json_answer, to_json};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(product_views))
}

/// View counts per product and bucket, in bucket order.
#[derive(Serialize, ToSchema)]
struct ViewsReport {
    items: Vec<ViewsBucket>,
}

#[derive(Serialize, ToSchema)]
struct ViewsBucket {
    #[schema(value_type = uuid::Uuid, example = json!(SKU))]
    sku: String,
    /// The hour or day (UTC) the views fell in.
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-20T00:00:00Z")]
    bucket_start: String,
    #[schema(example = 311)]
    views: i64,
}

/// The longest range one report covers.
const MAX_RANGE_DAYS: i64 = 366;

fn time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time like 2026-11-21T00:00:00Z".to_owned())
}

/// Anonymous product views per hour or day
#[utoipa::path(
    get,
    path = "/api/v1/reports/product-views",
    description = "Who may call it: admin or analyst.",
    security(("bearer" = [])),
    params(
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "from this time (RFC 3339); default a week before `to`", example = "2026-11-20T00:00:00Z"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "until this time (RFC 3339); default now; at most 366 days after `from`", example = "2026-11-21T00:00:00Z"),
        ("bucket" = Option<String>, Query, pattern = "^(hour|day)$", description = "hour (default) or day", example = "day"),
        ("sku" = Option<uuid::Uuid>, Query, description = "one product", example = json!(SKU)),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "view counts per product and bucket", body = ViewsReport),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
    )
)]
async fn product_views(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin, Role::Analyst], "the views report")?;
    let params = params.only(&["from", "to", "bucket", "sku"])?;
    let to = params.parsed("to", time)?.unwrap_or_else(Utc::now);
    let from = params
        .parsed("from", time)?
        .unwrap_or(to - Duration::days(7));
    if from >= to {
        return Err(ApiError::InvalidParameter("from: must be before to".into()));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::InvalidParameter(format!(
            "to: at most {MAX_RANGE_DAYS} days after from"
        )));
    }
    let day = match params.get("bucket").unwrap_or("hour") {
        "hour" => false,
        "day" => true,
        _ => {
            return Err(ApiError::InvalidParameter(
                "bucket: must be hour or day".into(),
            ));
        }
    };
    let sku = params.parsed("sku", |raw| {
        Uuid::parse_str(raw)
            .map(|s| s.to_string())
            .map_err(|_| "must be a UUID".to_owned())
    })?;
    let mut filter = doc! { views_fields::BUCKET_START: {
        "$gte": bson::DateTime::from_millis(from.timestamp_millis()),
        "$lt": bson::DateTime::from_millis(to.timestamp_millis()),
    } };
    if let Some(sku) = &sku {
        filter.insert(views_fields::SKU, sku);
    }
    let hours: Vec<HourlyViewsDoc> = state
        .breaker
        .run(async {
            state
                .db
                .collection(read_model::PRODUCT_VIEWS_HOURLY)
                .find(filter)
                .await?
                .try_collect()
                .await
        })
        .await?;
    let mut totals: BTreeMap<(DateTime<Utc>, String), i64> = BTreeMap::new();
    for hour in hours {
        let Some(mut start) = DateTime::from_timestamp_millis(hour.bucket_start.timestamp_millis())
        else {
            continue;
        };
        if day {
            start = start.duration_trunc(Duration::days(1)).unwrap_or(start);
        }
        *totals.entry((start, hour.sku)).or_default() += hour.views;
    }
    let items: Vec<_> = totals
        .into_iter()
        .map(|((start, sku), views)| ViewsBucket {
            sku,
            bucket_start: start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            views,
        })
        .collect();
    Ok(json_answer(
        &headers,
        false,
        &to_json(ViewsReport { items }),
    ))
}
