//! The catalog: list (filters, search, sorts, cursor pages), detail (counting anonymous views),
//! and history (admins).

mod answers;
mod detail;
mod history;
mod list;
mod listing;
mod tallies;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::QueryState;

/// Answer dates live in [`super::timestamps`]; `users` still reads them from here.
pub(super) use super::timestamps::rfc3339;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list::list))
        .routes(routes!(detail::detail))
        .routes(routes!(history::history))
}
