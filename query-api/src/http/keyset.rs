//! Keyset pages: a listing sorted by a key (and a tie-breaker when the key is not unique), read
//! strictly after the last item of the previous page. Items added meanwhile never shift a page.
//! The cursor ([`Scope`]) carries the last item's sort key, typed here before it reaches a
//! query.

use futures::TryStreamExt;
use mongodb::{
    Collection,
    bson::{Bson, Document, doc},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::{ApiError, cursor::Scope};

/// The type of a sort key, for checking what a cursor carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Int,
    Float,
    Text,
}

impl Key {
    fn typed(self, value: &Value) -> Option<Bson> {
        match (self, value) {
            (Key::Int, Value::Number(n)) => n.as_i64().map(Bson::Int64),
            (Key::Float, Value::Number(n)) => n.as_f64().map(Bson::Double),
            (Key::Text, Value::String(s)) => Some(Bson::String(s.clone())),
            _ => None,
        }
    }
}

/// How a listing is ordered: the key field and its direction; ties are broken by `tiebreak`
/// in the same direction (so one compound index serves the sort both ways).
#[derive(Debug, Clone, Copy)]
pub struct Order {
    pub field: &'static str,
    pub key: Key,
    pub ascending: bool,
    pub tiebreak: Option<(&'static str, Key)>,
}

/// One page: the documents (as their read model type) and the cursor of the next page, if
/// there is more.
pub struct Page<T> {
    pub documents: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Order {
    pub fn sort(&self) -> Document {
        let direction = if self.ascending { 1 } else { -1 };
        let mut sort = doc! { self.field: direction };
        if let Some((field, _)) = self.tiebreak {
            sort.insert(field, direction);
        }
        sort
    }

    /// The sort key of a document, as a cursor carries it.
    pub fn key_of(&self, document: &Document) -> Value {
        let value = |field: &str| {
            document
                .get(field)
                .cloned()
                .map(Bson::into_relaxed_extjson)
                .unwrap_or(Value::Null)
        };
        match self.tiebreak {
            None => json!([value(self.field)]),
            Some((tiebreak, _)) => json!([value(self.field), value(tiebreak)]),
        }
    }

    /// The condition "strictly after the item with this key".
    fn after(&self, key: &Value) -> Result<Document, ApiError> {
        let invalid = || ApiError::InvalidParameter("cursor: not a cursor of this listing".into());
        let beyond = if self.ascending { "$gt" } else { "$lt" };
        let value = self.key.typed(&key[0]).ok_or_else(invalid)?;
        let Some((tiebreak, kind)) = self.tiebreak else {
            return Ok(doc! { self.field: { beyond: value } });
        };
        let last = kind.typed(&key[1]).ok_or_else(invalid)?;
        Ok(doc! { "$or": [
            { self.field: { beyond: value.clone() } },
            { self.field: value, tiebreak: { beyond: last } },
        ] })
    }

    /// `filter` narrowed to what follows `cursor` (checked against `scope`).
    pub fn resume(
        &self,
        mut filter: Document,
        scope: &Scope,
        cursor: Option<&str>,
    ) -> Result<Document, ApiError> {
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            let key: Value = scope.decode(cursor)?;
            filter.extend(self.after(&key)?);
        }
        Ok(filter)
    }

    /// Up to `limit` documents matching `filter`, in order.
    pub async fn fetch<T: DeserializeOwned + Send + Sync>(
        &self,
        collection: &Collection<T>,
        filter: Document,
        scope: &Scope,
        limit: i64,
    ) -> mongodb::error::Result<Page<T>> {
        // Read as documents: the cursor takes the last one's key by the field names.
        let mut documents: Vec<Document> = collection
            .clone_with_type::<Document>()
            .find(filter)
            .sort(self.sort())
            .limit(limit + 1)
            .await?
            .try_collect()
            .await?;
        let more = documents.len() as i64 > limit;
        documents.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = more
            .then(|| {
                documents
                    .last()
                    .map(|last| scope.encode(&self.key_of(last)))
            })
            .flatten();
        Ok(Page {
            documents: documents
                .into_iter()
                .map(shared::read_model::decode)
                .collect::<Result<_, _>>()?,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use shared::read_model::product_fields::{CREATED_POSITION, ID, PRICE_CENTS};

    use super::*;

    const PRICE: Order = Order {
        field: PRICE_CENTS,
        key: Key::Int,
        ascending: true,
        tiebreak: Some((ID, Key::Text)),
    };

    #[test]
    fn a_cursor_key_of_the_wrong_type_is_refused() {
        assert!(PRICE.after(&json!(["100", "x"])).is_err());
        assert!(PRICE.after(&json!([100, 5])).is_err());
        assert!(PRICE.after(&json!([100, "x"])).is_ok());
        let newest = Order {
            field: CREATED_POSITION,
            key: Key::Int,
            ascending: false,
            tiebreak: None,
        };
        assert!(newest.after(&json!([{ "$gt": 1 }])).is_err());
        assert!(newest.after(&json!([])).is_err());
    }
}
