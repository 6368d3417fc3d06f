//! `usage_events`: the credit ledger, one row per charge or refund per key,
//! and the analytics read from it (`GET /v1/usage`).

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

/// One bucket of `GET /v1/usage`: net credits and characters (charges less
/// refunds), generations charged and refunded.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct UsageBucket {
    #[diesel(sql_type = diesel::sql_types::Date)]
    pub day: chrono::NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub api_key_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub credits: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub characters: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub generations: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub refunds: i64,
}

/// Usage per UTC day from `from` to `to` (both included), every day present,
/// days without usage as zeros. Read from the ledger.
pub fn usage_by_day(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> QueryResult<Vec<UsageBucket>> {
    diesel::sql_query(
        "SELECT d::date AS day, NULL::uuid AS api_key_id, \
         COALESCE(SUM(u.credits), 0)::BIGINT AS credits, \
         COALESCE(SUM(u.characters), 0)::BIGINT AS characters, \
         COUNT(u.id) FILTER (WHERE u.kind = 'charge') AS generations, \
         COUNT(u.id) FILTER (WHERE u.kind = 'refund') AS refunds \
         FROM generate_series($2::date::timestamp, $3::date::timestamp, interval '1 day') AS d \
         LEFT JOIN usage_events u ON u.workspace_id = $1 \
           AND u.created_at >= (d AT TIME ZONE 'UTC') \
           AND u.created_at < ((d + interval '1 day') AT TIME ZONE 'UTC') \
         GROUP BY d ORDER BY d",
    )
    .bind::<diesel::sql_types::Uuid, _>(workspace_id)
    .bind::<diesel::sql_types::Date, _>(from)
    .bind::<diesel::sql_types::Date, _>(to)
    .load(conn)
}

/// Usage per key from `from` to `to` (UTC days, both included), keys with
/// usage only, most credits first; `day` is `from`. A deleted key's usage
/// is under `api_key_id` NULL.
pub fn usage_by_key(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> QueryResult<Vec<UsageBucket>> {
    diesel::sql_query(
        "SELECT $2::date AS day, u.api_key_id, \
         COALESCE(SUM(u.credits), 0)::BIGINT AS credits, \
         COALESCE(SUM(u.characters), 0)::BIGINT AS characters, \
         COUNT(*) FILTER (WHERE u.kind = 'charge') AS generations, \
         COUNT(*) FILTER (WHERE u.kind = 'refund') AS refunds \
         FROM usage_events u WHERE u.workspace_id = $1 \
           AND u.created_at >= ($2::date::timestamp AT TIME ZONE 'UTC') \
           AND u.created_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC') \
         GROUP BY u.api_key_id ORDER BY credits DESC, u.api_key_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(workspace_id)
    .bind::<diesel::sql_types::Date, _>(from)
    .bind::<diesel::sql_types::Date, _>(to)
    .load(conn)
}

/// One key's use since its workspace's period began (`GET /v1/keys`).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct KeyPeriodUsage {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub api_key_id: Uuid,
    /// Net credits: charges less refunds.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub credits: i64,
    /// Generations charged.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub requests: i64,
}

/// Net credits and generations per key since the workspace's period began
/// (rolling the period over first); keys with usage only.
pub fn per_key_this_period(
    conn: &mut PgConnection,
    workspace_id: Uuid,
) -> QueryResult<Vec<KeyPeriodUsage>> {
    super::Workspace::roll_over(conn, workspace_id)?;
    diesel::sql_query(
        "SELECT u.api_key_id, COALESCE(SUM(u.credits), 0)::BIGINT AS credits, \
         COUNT(*) FILTER (WHERE u.kind = 'charge') AS requests \
         FROM usage_events u JOIN workspaces w ON w.id = u.workspace_id \
         WHERE u.workspace_id = $1 AND u.api_key_id IS NOT NULL AND u.created_at >= w.period_start \
         GROUP BY u.api_key_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(workspace_id)
    .load(conn)
}

#[derive(QueryableByName)]
struct Net {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    credits: i64,
}

/// Net credits the ledger records for the workspace since `since`.
pub fn net_credits_since(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> QueryResult<i64> {
    let net: Net = diesel::sql_query(
        "SELECT COALESCE(SUM(credits), 0)::BIGINT AS credits FROM usage_events \
         WHERE workspace_id = $1 AND created_at >= $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(workspace_id)
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .get_result(conn)?;
    Ok(net.credits)
}
