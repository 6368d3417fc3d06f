//! Pages of a list, the same on every list route (`GET /v1/generations`,
//! `/v1/voices`, `/v1/webhooks`, `/v1/webhooks/{id}/deliveries`):
//! `?limit=` 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]; anything else is
//! 400 `invalid_parameter`), `?cursor=` the `nextCursor` of the previous
//! page (anything else is 400 `invalid_cursor`), and the answer
//! `{ "data", "hasMore", "nextCursor" }` ([`PageView`]).

use serde::Serialize;

use shared::http::ApiError;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 20;
/// Items per page at most.
pub const MAX_LIMIT: i64 = 100;

/// A page request: how many, and after which item (exclusive).
#[derive(Debug)]
pub struct Page<Id> {
    pub limit: i64,
    pub after: Option<Id>,
}

impl<Id> Page<Id> {
    /// The page of `?limit=&cursor=`, the cursor read by `parse` (an id of
    /// the list's items; one it does not read is `invalid_cursor`).
    pub fn parse(
        limit: Option<i64>,
        cursor: Option<String>,
        parse: impl FnOnce(&str) -> Option<Id>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            limit: valid_limit(limit)?,
            after: cursor
                .map(|c| parse(&c).ok_or_else(bad_cursor))
                .transpose()?,
        })
    }
}

/// `limit`, or [`DEFAULT_LIMIT`]; 400 `invalid_parameter` outside
/// 1..=[`MAX_LIMIT`].
pub fn valid_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        n => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("limit must be between 1 and {MAX_LIMIT}, not {n}"),
        )
        .with_param("limit")),
    }
}

/// 400 `invalid_cursor`: a cursor this list did not return (or whose item
/// is gone).
pub fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "cursor is not one this list returned as nextCursor",
    )
    .with_param("cursor")
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageView<T> {
    data: Vec<T>,
    has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

impl<T> PageView<T> {
    /// `rows` were loaded with `limit + 1`: the extra one only says there is
    /// more, and the last one kept is the cursor of the next page.
    pub fn new<R>(
        mut rows: Vec<R>,
        limit: i64,
        cursor_of: impl Fn(&R) -> String,
        view: impl FnMut(R) -> T,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            data: rows.into_iter().map(view).collect(),
            has_more,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_20_and_is_1_to_100() {
        assert_eq!(valid_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(valid_limit(Some(1)).unwrap(), 1);
        assert_eq!(valid_limit(Some(100)).unwrap(), 100);
        for bad in [0, -1, 101, i64::MAX] {
            let e = valid_limit(Some(bad)).unwrap_err();
            assert_eq!(e.code, "invalid_parameter", "{bad}");
            assert_eq!(e.param.as_deref(), Some("limit"));
        }
    }

    #[test]
    fn a_page_keeps_limit_rows_and_points_at_the_last() {
        let page = PageView::new(vec![1, 2, 3], 2, |n| n.to_string(), |n| n * 10);
        assert_eq!(page.data, vec![10, 20]);
        assert!(page.has_more);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = PageView::new(vec![1, 2], 2, |n| n.to_string(), |n| n);
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
    }
}
