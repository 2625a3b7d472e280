//! Writes that met their own earlier copy: a redelivered event's, which change nothing and
//! are therefore not failures.

use mongodb::error::{Error, ErrorKind, WriteFailure};

/// MongoDB's code for a write refused by a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// True when a single write was refused because its document is there already.
pub fn is_duplicate_key(error: &Error) -> bool {
    matches!(&*error.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY)
}

/// True when every failure of an unordered bulk insert is a duplicate key.
pub fn only_duplicates(error: &Error) -> bool {
    match &*error.kind {
        ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY))
        }
        _ => is_duplicate_key(error),
    }
}
