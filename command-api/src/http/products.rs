//! Admins managing the catalog: create, update (any subset of fields), delete.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{post, put},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{ApiError, events::ProductCreated, http::ApiJson};
use uuid::Uuid;

use super::{
    Admin, AppState,
    command::{self, Begun, IdempotencyHeader, Written, if_match},
};
use crate::{
    commands::products,
    domain::{
        product::{ProductChanges, ProductCommand},
        values::{Fields, parse_currency, parse_price, parse_specs, parse_text},
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", post(create))
        .route("/api/v1/products/{sku}", put(update).delete(delete))
}

#[derive(Deserialize, Serialize)]
struct ProductBody {
    sku: Option<String>,
    name: Option<String>,
    brand: Option<String>,
    price: Option<Value>,
    currency: Option<String>,
    description: Option<String>,
    specs: Option<Value>,
}

fn parse_sku(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw).map_err(|_| "must be a UUID".to_owned())
}

/// Every field of the body that is present, validated; one error per bad field.
fn changes(body: &ProductBody, fields: &mut Fields) -> ProductChanges {
    ProductChanges {
        name: fields.optional("name", body.name.as_deref(), |v| parse_text(v, 1, 200)),
        brand: fields.optional("brand", body.brand.as_deref(), |v| parse_text(v, 1, 100)),
        price: fields.optional("price", body.price.as_ref(), parse_price),
        currency: fields.optional("currency", body.currency.as_deref(), parse_currency),
        description: fields.optional("description", body.description.as_deref(), |v| {
            parse_text(v, 0, 10_000)
        }),
        specs: fields.optional("specs", body.specs.as_ref(), parse_specs),
    }
}

fn answer(
    status: StatusCode,
    sku: Uuid,
    version: i64,
    appended: Option<&crate::store::Appended>,
) -> Written {
    Written::new(status, json!({ "sku": sku })).appended(appended, version)
}

async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let sku = fields.optional("sku", body.sku.as_deref(), parse_sku);
    for (name, present) in [
        ("name", body.name.is_some()),
        ("brand", body.brand.is_some()),
        ("price", body.price.is_some()),
    ] {
        if !present {
            fields.push(name, "is required");
        }
    }
    let given = changes(&body, &mut fields);
    fields.finish()?;
    let sku = sku.unwrap_or_else(Uuid::now_v7);
    let created = ProductCreated {
        name: given.name.unwrap_or_default(),
        brand: given.brand.unwrap_or_default(),
        price: given.price.unwrap_or_default(),
        currency: given.currency.unwrap_or_else(|| "USD".to_owned()),
        description: given.description.unwrap_or_default(),
        specs: given.specs.unwrap_or_default(),
    };
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let (version, appended) = products::execute(
        &mut command.tx,
        sku,
        None,
        Some(caller.actor()),
        ProductCommand::Create(created),
    )
    .await?;
    let written = answer(StatusCode::CREATED, sku, version, appended.as_ref())
        .location(format!("/api/v1/products/{sku}"));
    command.commit(written).await
}

async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(sku): Path<String>,
    headers: HeaderMap,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<Response, ApiError> {
    let sku = Uuid::parse_str(&sku).map_err(|_| ApiError::NotFound("product"))?;
    let expected = if_match(&headers)?;
    let mut fields = Fields::default();
    if body
        .sku
        .as_deref()
        .is_some_and(|s| parse_sku(s).ok() != Some(sku))
    {
        fields.push("sku", "cannot be changed");
    }
    let given = changes(&body, &mut fields);
    fields.finish()?;
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let (version, appended) = products::execute(
        &mut command.tx,
        sku,
        expected,
        Some(caller.actor()),
        ProductCommand::Update(given),
    )
    .await?;
    command
        .commit(answer(StatusCode::OK, sku, version, appended.as_ref()))
        .await
}

async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sku = Uuid::parse_str(&sku).map_err(|_| ApiError::NotFound("product"))?;
    let expected = if_match(&headers)?;
    let mut command = match command::begin(&state.pool, None).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let (version, appended) = products::execute(
        &mut command.tx,
        sku,
        expected,
        Some(caller.actor()),
        ProductCommand::Delete,
    )
    .await?;
    command
        .commit(Written::no_content().appended(appended.as_ref(), version))
        .await
}
