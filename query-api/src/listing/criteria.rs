//! What a list page asks for: the order of the list endpoint and the filters, as the index
//! and the store path both take them.

/// The orders of the list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
    Rating,
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "newest" => Sort::Newest,
            "price_asc" => Sort::PriceAsc,
            "price_desc" => Sort::PriceDesc,
            "name" => Sort::Name,
            "rating" => Sort::Rating,
            _ => return Err("must be newest, price_asc, price_desc, name or rating".into()),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::PriceAsc => "price_asc",
            Sort::PriceDesc => "price_desc",
            Sort::Name => "name",
            Sort::Rating => "rating",
        }
    }
}

/// What a list page asks for (text filters lower-cased, as the documents' keys are).
#[derive(Debug, Clone)]
pub struct Criteria {
    pub sort: Sort,
    pub brand: Option<String>,
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
}
