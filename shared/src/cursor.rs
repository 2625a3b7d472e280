//! Opaque page cursors. A cursor carries the sort key of the last item of a page, so the next
//! page starts strictly after it (keyset pagination: no skips or repeats while items are
//! added). It is bound to the listing that issued it — the endpoint, the sort and the filters —
//! by a check value, so a cursor that was edited, truncated or issued for another listing is
//! refused with 400 instead of paging something else.
//!
//! The check is an integrity check, not a secret: any replica can verify any other replica's
//! cursors without shared keys. A forged cursor can at worst start a page at a chosen point of
//! a listing the caller may read anyway; the key values are decoded to typed values before they
//! reach a query.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::ApiError;

const CHECK_BYTES: usize = 12;

/// The listing a cursor belongs to, e.g. `products|sort=price_asc|brand=canon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    pub fn new(listing: &str) -> Self {
        Self(listing.to_owned())
    }

    /// Adds a parameter that shapes the listing (a filter or the sort).
    pub fn with(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        // Lengths make the encoding unambiguous whatever the values hold.
        let value = value.to_string();
        self.0
            .push_str(&format!("|{}:{name}={}:{value}", name.len(), value.len()));
        self
    }

    fn check(&self, payload: &[u8]) -> [u8; CHECK_BYTES] {
        let mut hasher = Sha256::new();
        hasher.update(b"camreviews-cursor-v1\0");
        hasher.update(self.0.as_bytes());
        hasher.update(b"\0");
        hasher.update(payload);
        let digest = hasher.finalize();
        let mut check = [0; CHECK_BYTES];
        check.copy_from_slice(&digest[..CHECK_BYTES]);
        check
    }

    /// The cursor that resumes this listing after the item whose sort key is `key`.
    pub fn encode<K: Serialize>(&self, key: &K) -> String {
        let payload = serde_json::to_vec(key).unwrap_or_default();
        let mut bytes = payload.clone();
        bytes.extend_from_slice(&self.check(&payload));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The key carried by `cursor`, if it was issued for this listing and not altered.
    pub fn decode<K: DeserializeOwned>(&self, cursor: &str) -> Result<K, ApiError> {
        let invalid = || ApiError::InvalidParameter("cursor: not a cursor of this listing".into());
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        if bytes.len() <= CHECK_BYTES {
            return Err(invalid());
        }
        let (payload, check) = bytes.split_at(bytes.len() - CHECK_BYTES);
        if self.check(payload) != check {
            return Err(invalid());
        }
        serde_json::from_slice(payload).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("products")
            .with("sort", "price_asc")
            .with("brand", "canon")
    }

    #[test]
    fn a_cursor_round_trips_within_its_listing() {
        let cursor = scope().encode(&(1299_i64, "abc"));
        let key: (i64, String) = scope().decode(&cursor).unwrap();
        assert_eq!(key, (1299, "abc".to_owned()));
    }

    #[test]
    fn another_listing_refuses_it() {
        let cursor = scope().encode(&(1299_i64, "abc"));
        let other = Scope::new("products")
            .with("sort", "price_asc")
            .with("brand", "nikon");
        assert!(other.decode::<(i64, String)>(&cursor).is_err());
        let other = Scope::new("reviews")
            .with("sort", "price_asc")
            .with("brand", "canon");
        assert!(other.decode::<(i64, String)>(&cursor).is_err());
    }

    #[test]
    fn an_altered_cursor_is_refused() {
        let cursor = scope().encode(&(1299_i64, "abc"));
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[1] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(scope().decode::<(i64, String)>(&altered).is_err());
        for junk in ["", "x", "%%%", &cursor[..cursor.len() - 2]] {
            assert!(scope().decode::<(i64, String)>(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn parameter_boundaries_cannot_be_shifted() {
        let a = Scope::new("p").with("brand", "a|1:q=1:b");
        let b = Scope::new("p").with("brand", "a").with("q", "b");
        assert_ne!(a, b);
    }
}
