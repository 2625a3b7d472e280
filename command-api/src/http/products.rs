//! Admins managing the catalog: create, update (any subset of fields), delete.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    ApiError,
    http::ApiJson,
    openapi::{Conflict, Forbidden, NotFound, ValidationFailed, VersionMismatch, ids::SKU},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    Admin, AppState,
    answers::{ProductRef, Stamped},
    command::{self, IdempotencyHeader, IfMatch, Written, if_match},
};
use crate::{
    commands::products,
    domain::{
        product::{NewProduct, ProductChanges, ProductCommand},
        values::{Fields, parse_currency, parse_price, parse_specs, parse_text},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(update, delete))
}

/// A product's fields: `name`, `brand` and `price` are required to create one; an update
/// takes any subset.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct ProductBody {
    /// Cannot be changed: when sent, it must be the product's own.
    #[schema(value_type = Option<Uuid>, read_only, example = json!(SKU))]
    sku: Option<String>,
    /// 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "\\S",
        example = "Leica Q3"
    )]
    name: Option<String>,
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S", example = "Leica")]
    brand: Option<String>,
    /// At least 0, at most two decimals: a decimal string (or a JSON number).
    #[schema(value_type = Option<String>, pattern = "^\\s*[0-9]{1,12}(\\.[0-9]{1,2})?\\s*$", example = "5995.00")]
    price: Option<Value>,
    /// ISO 4217; `USD` when absent.
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    currency: Option<String>,
    /// At most 10,000 characters.
    #[schema(max_length = 10000, example = "Full-frame compact")]
    description: Option<String>,
    /// A flat map of strings: at most 100 entries, keys 1 to 100 characters, values at most
    /// 1,000.
    #[schema(schema_with = specs_schema, example = json!({ "sensor": "60 MP" }))]
    specs: Option<Value>,
}

/// A new product: the fields [`ProductBody`] requires to create one.
// Read as loosely as `ProductBody` (the same fields, in the same order), so that `create`
// names each missing or bad field in its 422 and `changes` validates both alike.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(as = NewProduct)]
pub(super) struct NewProductBody {
    #[schema(value_type = Option<Uuid>, example = json!(SKU))]
    sku: Option<String>,
    #[schema(
        value_type = String,
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = "\\S",
        example = "Leica Q3"
    )]
    name: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = "\\S", example = "Leica")]
    brand: Option<String>,
    /// At least 0, at most two decimals: a decimal string (or a JSON number).
    #[schema(value_type = String, required = true, pattern = "^\\s*[0-9]{1,12}(\\.[0-9]{1,2})?\\s*$", example = "5995.00")]
    price: Option<Value>,
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    currency: Option<String>,
    #[schema(max_length = 10000, example = "Full-frame compact")]
    description: Option<String>,
    /// A flat map of strings: at most 100 entries, keys 1 to 100 characters, values at most
    /// 1,000.
    #[schema(schema_with = specs_schema, example = json!({ "sensor": "60 MP" }))]
    specs: Option<Value>,
}

impl From<NewProductBody> for ProductBody {
    fn from(body: NewProductBody) -> Self {
        ProductBody {
            sku: body.sku,
            name: body.name,
            brand: body.brand,
            price: body.price,
            currency: body.currency,
            description: body.description,
            specs: body.specs,
        }
    }
}

/// `specs` as [`parse_specs`] takes it: what a derived map schema cannot say (the length of
/// the keys, the number of entries).
fn specs_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let text = |min: usize, max: usize| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(Some(max))
    };
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(text(1, 100)))
        .additional_properties(Some(text(0, 1000)))
        .max_properties(Some(100))
        .build()
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
    appended: Option<&eventstore::Appended>,
) -> Written {
    Written::new(status, ProductRef { sku }).appended(appended, version)
}

/// Add a product to the catalog
#[utoipa::path(
    post,
    path = "/api/v1/products",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = NewProductBody,
    responses(
        (status = 201, description = "created; `Location` is the product, `X-Event-Position` the event", body = Stamped<ProductRef>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(Forbidden)),
        (status = 409, response = inline(Conflict)),
        (status = 422, response = inline(ValidationFailed)),
    )
)]
async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<NewProductBody>,
) -> Result<Response, ApiError> {
    // The same fields serialized alike: the idempotency key below is the body's as sent.
    let body = ProductBody::from(body);
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
    let created = NewProduct {
        name: given.name.unwrap_or_default(),
        brand: given.brand.unwrap_or_default(),
        price: given.price.unwrap_or_default(),
        currency: given.currency,
        description: given.description,
        specs: given.specs,
    };
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    // A create loads nothing and locks nothing: its append is its only write.
    command::run_one(&state.pool, key, async |tx| {
        let (version, appended) = products::execute(
            &mut *tx,
            sku,
            None,
            Some(caller.actor()),
            ProductCommand::Create(created),
        )
        .await?;
        let written = answer(StatusCode::CREATED, sku, version, appended.as_ref())
            .location(format!("/api/v1/products/{sku}"));
        Ok(written)
    })
    .await
}

/// Change any subset of a product's fields
#[utoipa::path(
    put,
    path = "/api/v1/products/{sku}",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("sku" = String, Path, description = "the product (a UUID)", example = json!(SKU)),
        IfMatch, IdempotencyHeader,
    ),
    request_body = ProductBody,
    responses(
        (status = 200, description = "changed (`X-Event-Position` set)", body = Stamped<ProductRef>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
        (status = 409, response = inline(Conflict)),
        (status = 412, response = inline(VersionMismatch)),
        (status = 422, response = inline(ValidationFailed)),
    )
)]
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
    command::run(&state.pool, key, async |tx| {
        let (version, appended) = products::execute(
            &mut *tx,
            sku,
            expected,
            Some(caller.actor()),
            ProductCommand::Update(given),
        )
        .await?;
        Ok(answer(StatusCode::OK, sku, version, appended.as_ref()))
    })
    .await
}

/// Remove a product
#[utoipa::path(
    delete,
    path = "/api/v1/products/{sku}",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("sku" = String, Path, description = "the product (a UUID)", example = json!(SKU)),
        IfMatch,
    ),
    responses(
        (status = 204, description = "removed (`X-Event-Position` set)"),
        (status = 403, response = inline(Forbidden)),
        (status = 404, response = inline(NotFound)),
        (status = 412, response = inline(VersionMismatch)),
    )
)]
async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sku = Uuid::parse_str(&sku).map_err(|_| ApiError::NotFound("product"))?;
    let expected = if_match(&headers)?;
    command::run(&state.pool, None, async |tx| {
        let (version, appended) = products::execute(
            &mut *tx,
            sku,
            expected,
            Some(caller.actor()),
            ProductCommand::Delete,
        )
        .await?;
        Ok(Written::no_content().appended(appended.as_ref(), version))
    })
    .await
}
