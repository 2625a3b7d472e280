//! Strict query strings. Every parameter is a plain string under a known name: an unknown name
//! (`brand[$ne]`), a repeated one or a value that does not parse is 400 `invalid_parameter`,
//! so no query string can widen what a listing returns.

use std::collections::BTreeMap;

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::ApiError;

/// Default and largest page size of every list endpoint.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// The decoded query string of a request, name → value.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query().unwrap_or(""))
    }
}

impl QueryParams {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(ApiError::InvalidParameter(format!(
                    "{name}: given more than once"
                )));
            }
        }
        Ok(Self(params))
    }

    /// Refuses any parameter not named in `known`.
    pub fn only(self, known: &[&str]) -> Result<Self, ApiError> {
        match self.0.keys().find(|name| !known.contains(&name.as_str())) {
            Some(name) => Err(ApiError::InvalidParameter(format!(
                "unknown parameter {name:?}; this endpoint takes {}",
                known.join(", ")
            ))),
            None => Ok(self),
        }
    }

    /// The parameters in one order, for keys of caches.
    pub fn canonical(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.0)
            .finish()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value parsed by `parse`, which explains what it wants when the value does not fit.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|raw| {
                parse(raw).map_err(|why| ApiError::InvalidParameter(format!("{name}: {why}")))
            })
            .transpose()
    }

    /// `limit`: 1..=100, default 20.
    pub fn limit(&self) -> Result<i64, ApiError> {
        Ok(self
            .parsed("limit", |raw| match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
            })?
            .unwrap_or(DEFAULT_LIMIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        for bad in ["0", "101", "-1", "abc", "", "1.5", "20 "] {
            let q = QueryParams::parse(&format!("limit={bad}")).unwrap();
            assert!(q.limit().is_err(), "{bad:?}");
        }
        assert_eq!(QueryParams::parse("").unwrap().limit().unwrap(), 20);
        assert_eq!(
            QueryParams::parse("limit=100").unwrap().limit().unwrap(),
            100
        );
    }

    #[test]
    fn operator_shaped_names_are_unknown_names() {
        let q = QueryParams::parse("brand%5B%24ne%5D=x").unwrap();
        assert_eq!(q.get("brand[$ne]"), Some("x"));
        assert!(q.only(&["brand", "q"]).is_err());
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert!(QueryParams::parse("brand=a&brand=b").is_err());
    }
}
