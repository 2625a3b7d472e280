//! The list's parameters: filters, search and sort, read into the store's filter, the
//! in-memory index's criteria and the cursor's scope.

use mongodb::bson::{Document, doc};
use shared::{ApiError, cursor::Scope, http::QueryParams, read_model::product_fields};

use crate::{
    http::{
        keyset::{Key, Order},
        text_filter::{literal, plain_text},
    },
    listing::{Criteria, Sort},
};

/// How a sort is read from the store.
fn order(sort: Sort) -> Order {
    use product_fields::{CREATED_POSITION, ID, NAME_SORT, PRICE_CENTS, RATING_SORT};
    let (field, key, ascending) = match sort {
        Sort::Newest => (CREATED_POSITION, Key::Int, false),
        Sort::PriceAsc => (PRICE_CENTS, Key::Int, true),
        Sort::PriceDesc => (PRICE_CENTS, Key::Int, false),
        Sort::Name => (NAME_SORT, Key::Text, true),
        Sort::Rating => (RATING_SORT, Key::Float, false),
    };
    // `created_position` is unique; the other keys are not.
    let tiebreak = (field != CREATED_POSITION).then_some((ID, Key::Text));
    Order {
        field,
        key,
        ascending,
        tiebreak,
    }
}

/// Parsed list parameters: the filter and the cursor scope they define.
pub(super) struct Listing {
    pub(super) filter: Document,
    /// The same filter and sort, for the in-memory index.
    pub(super) criteria: Criteria,
    pub(super) scope: Scope,
    pub(super) order: Order,
    pub(super) limit: i64,
    pub(super) cursor: Option<String>,
}

impl Listing {
    pub(super) fn parse(params: QueryParams) -> Result<Self, ApiError> {
        let params = params.only(&[
            "limit",
            "cursor",
            "brand",
            "q",
            "min_price",
            "max_price",
            "sort",
        ])?;
        let text = plain_text;
        let price = |raw: &str| {
            shared::money::cents(raw.trim())
                .ok_or_else(|| "must be a non-negative amount like 1299.99".to_owned())
        };
        let sort = params.parsed("sort", Sort::parse)?.unwrap_or(Sort::Newest);
        let brand = params.parsed("brand", text)?.filter(|b| !b.is_empty());
        let q = params.parsed("q", text)?.filter(|q| !q.is_empty());
        let min = params.parsed("min_price", price)?;
        let max = params.parsed("max_price", price)?;
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(ApiError::InvalidParameter(
                    "min_price: is above max_price".into(),
                ));
            }
        }

        let mut filter = doc! { product_fields::DELETED: false };
        let mut scope = Scope::new("products").with("sort", sort.name());
        if let Some(brand) = &brand {
            filter.insert(product_fields::BRAND_KEY, brand);
            scope = scope.with("brand", brand);
        }
        if let Some(q) = &q {
            filter.insert(product_fields::SEARCH_TEXT, literal(q));
            scope = scope.with("q", q);
        }
        if min.is_some() || max.is_some() {
            let mut range = doc! {};
            if let Some(min) = min {
                range.insert("$gte", min);
                scope = scope.with("min_price", min);
            }
            if let Some(max) = max {
                range.insert("$lte", max);
                scope = scope.with("max_price", max);
            }
            filter.insert(product_fields::PRICE_CENTS, range);
        }
        Ok(Self {
            filter,
            criteria: Criteria {
                sort,
                brand,
                q,
                min_price: min,
                max_price: max,
            },
            scope,
            order: order(sort),
            limit: params.limit()?,
            cursor: params
                .get("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_operator_shaped_parameters_are_refused() {
        for query in [
            "brand[$ne]=x",
            "q[$regex]=.",
            "sort=random",
            "limit=0",
            "min_price=-1",
            "min_price=5&max_price=4",
        ] {
            let params = QueryParams::parse(query).unwrap();
            assert!(Listing::parse(params).is_err(), "{query}");
        }
    }
}
