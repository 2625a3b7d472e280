//! `GET /api/v1/reports/product-views?from&to&bucket=hour|day&sku` (admins and analysts):
//! anonymous views per product and hour or day, from the notifier's hourly tallies.

use std::collections::BTreeMap;

use axum::{Router, extract::State, http::HeaderMap, response::Response, routing::get};
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use serde_json::json;
use shared::{
    ApiError, Role,
    http::QueryParams,
    read_model::{self, HourlyViewsDoc, views_fields},
};
use uuid::Uuid;

use super::{QueryState, Reader, caching::json_answer};

pub fn router() -> Router<QueryState> {
    Router::new().route("/api/v1/reports/product-views", get(product_views))
}

/// The longest range one report covers.
const MAX_RANGE_DAYS: i64 = 366;

fn time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time like 2026-11-21T00:00:00Z".to_owned())
}

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
        .map(|((start, sku), views)| {
            json!({
                "sku": sku,
                "bucket_start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "views": views,
            })
        })
        .collect();
    Ok(json_answer(&headers, false, &json!({ "items": items })))
}
