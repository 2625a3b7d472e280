//! One product as the list index holds it: its document and the keys it is ordered and
//! filtered by, read once when the document is put in.

use mongodb::bson::{Bson, Document};
use shared::read_model::product_fields::{
    BRAND_KEY, CREATED_POSITION, ID, NAME_SORT, PRICE_CENTS, RATING_SORT, SEARCH_TEXT,
};

use super::Criteria;

/// One product as the index holds it: its document and the keys it is found by.
#[derive(Debug)]
pub struct Entry {
    pub document: Document,
    pub(super) sku: String,
    pub(super) created: i64,
    pub(super) price: i64,
    pub(super) name: String,
    pub(super) rating: Rating,
    brand: String,
    search: String,
}

impl Entry {
    pub(super) fn of(document: Document) -> Option<Self> {
        let text = |field: &str| document.get_str(field).ok().map(str::to_owned);
        let int = |field: &str| match document.get(field) {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        };
        Some(Self {
            sku: text(ID)?,
            created: int(CREATED_POSITION)?,
            price: int(PRICE_CENTS)?,
            name: text(NAME_SORT)?,
            rating: Rating(document.get_f64(RATING_SORT).unwrap_or(-1.0)),
            brand: text(BRAND_KEY).unwrap_or_default(),
            search: text(SEARCH_TEXT).unwrap_or_default(),
            document,
        })
    }

    pub(super) fn matches(&self, criteria: &Criteria) -> bool {
        criteria.brand.as_ref().is_none_or(|b| *b == self.brand)
            && criteria
                .q
                .as_ref()
                .is_none_or(|q| self.search.contains(q.as_str()))
            && criteria.min_price.is_none_or(|min| self.price >= min)
            && criteria.max_price.is_none_or(|max| self.price <= max)
    }
}

/// A rating key ordered as MongoDB orders doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rating(pub(super) f64);

impl Eq for Rating {}

impl PartialOrd for Rating {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rating {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
