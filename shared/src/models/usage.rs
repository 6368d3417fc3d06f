//! `usage_events`: the credit ledger, one row per charge or refund per key.

use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::usage_events;

#[derive(Debug, Insertable)]
#[diesel(table_name = usage_events)]
pub struct NewUsageEvent {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub generation_id: Option<Uuid>,
    /// `charge` (credits > 0) or `refund` (credits < 0).
    pub kind: &'static str,
    pub credits: i64,
    pub characters: i64,
}

impl NewUsageEvent {
    /// Records it; a second charge or refund of one generation is a no-op
    /// (a unique index), which makes refunds safe to repeat.
    pub fn insert(&self, conn: &mut PgConnection) -> QueryResult<bool> {
        let n = diesel::insert_into(usage_events::table)
            .values(self)
            .on_conflict_do_nothing()
            .execute(conn)?;
        Ok(n == 1)
    }
}
