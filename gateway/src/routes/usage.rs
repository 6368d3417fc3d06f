//! `GET /v1/workspace` (plan, allowance, this period's use) and
//! `GET /v1/usage?from&to&groupBy=day|key` (buckets read from the ledger,
//! days without usage as zeros). Scope `usage:read`.
//!
//! Reading the workspace rolls its period over when a new month began (see
//! `shared::models::workspace`), so `creditsUsed` is always this month's.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{KeyId, WorkspaceId};
use shared::models::Workspace;
use shared::models::usage::{UsageBucket, usage_by_day, usage_by_key};
use shared::models::workspace::{month_start, period_end};

use crate::auth::Principal;
use crate::state::State;

/// Days one `GET /v1/usage` may span.
const MAX_DAYS: i64 = 366;

pub fn routes(r: &mut crate::routes::Routes) {
    r.get("/v1/workspace", workspace).get("/v1/usage", usage);
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    #[serde(serialize_with = "shared::time::serialize")]
    start: DateTime<Utc>,
    #[serde(serialize_with = "shared::time::serialize")]
    end: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Per key, `null`: none.
    requests_per_second: Option<i64>,
    /// Generations processing at once, `null`: none.
    max_in_flight: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    id: WorkspaceId,
    name: String,
    plan: String,
    /// `null` when the plan is unlimited.
    credits_included: Option<i64>,
    credits_used: i64,
    /// `null` when the plan is unlimited.
    credits_remaining: Option<i64>,
    period: Period,
    limits: Limits,
}

/// The plan, this period's allowance and use, and the limits.
#[utoipa::path(
    get,
    path = "/v1/workspace",
    tag = "usage",
    operation_id = "getWorkspace",
    responses((status = 200, description = "The workspace", body = WorkspaceView)),
    security(("apiKey" = ["usage:read"]))
)]
async fn workspace(
    state: web::Data<State>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("usage:read")?;
    let id = principal.workspace_id.0;
    let w = state
        .db
        .run(move |conn| Workspace::current(conn, id).map_err(DbError::from))
        .await?;
    let included = (!w.unlimited()).then_some(w.credits_included);
    Ok(HttpResponse::Ok().json(WorkspaceView {
        id: WorkspaceId(w.id),
        credits_remaining: included.map(|i| (i - w.credits_used).max(0)),
        credits_included: included,
        credits_used: w.credits_used,
        period: Period {
            start: w.period_start,
            end: period_end(w.period_start),
        },
        name: w.name,
        plan: w.plan,
        limits: Limits {
            requests_per_second: principal.plan.requests_per_second,
            max_in_flight: principal.plan.max_in_flight,
        },
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First UTC day (`YYYY-MM-DD`), default the period's first day.
    from: Option<String>,
    /// Last UTC day, included; default today.
    to: Option<String>,
    /// `day` (default) or `key`.
    #[param(pattern = "^(day|key)$")]
    group_by: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    /// With `groupBy=key`; `null` for usage of a deleted key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<KeyId>)]
    key_id: Option<Option<KeyId>>,
    credits: i64,
    characters: i64,
    generations: i64,
    refunds: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    from: String,
    to: String,
    #[schema(value_type = String, example = "day")]
    group_by: &'static str,
    data: Vec<Bucket>,
    total: Totals,
}

#[derive(Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    credits: i64,
    characters: i64,
    generations: i64,
    refunds: i64,
}

fn day(raw: Option<&str>, param: &str, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("{param} must be a date YYYY-MM-DD, not {s:?}"),
            )
            .with_param(param)
        }),
    }
}

/// Credits, characters and generations per day or per key, from the ledger.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    operation_id = "getUsage",
    params(UsageQuery),
    responses(
        (status = 200, description = "The buckets and their total", body = UsageView),
        (status = 400, description = "A date that is not YYYY-MM-DD, to before from, more than 366 days, unknown groupBy", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["usage:read"]))
)]
async fn usage(
    state: web::Data<State>,
    principal: Principal,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require("usage:read")?;
    let q = query.into_inner();
    let now = Utc::now();
    let from = day(q.from.as_deref(), "from", month_start(now).date_naive())?;
    let to = day(q.to.as_deref(), "to", now.date_naive())?;
    if to < from || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("to must not be before from, and the range at most {MAX_DAYS} days"),
        )
        .with_param("to"));
    }
    let by_key = match q.group_by.as_deref() {
        None | Some("day") => false,
        Some("key") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("groupBy must be day or key, not {other:?}"),
            )
            .with_param("groupBy"));
        }
    };
    let ws = principal.workspace_id.0;
    let rows: Vec<UsageBucket> = state
        .db
        .run(move |conn| {
            if by_key {
                usage_by_key(conn, ws, from, to)
            } else {
                usage_by_day(conn, ws, from, to)
            }
            .map_err(DbError::from)
        })
        .await?;
    let mut total = Totals::default();
    let data = rows
        .into_iter()
        .map(|r| {
            total.credits += r.credits;
            total.characters += r.characters;
            total.generations += r.generations;
            total.refunds += r.refunds;
            Bucket {
                date: (!by_key).then(|| r.day.format("%Y-%m-%d").to_string()),
                key_id: by_key.then(|| r.api_key_id.map(KeyId)),
                credits: r.credits,
                characters: r.characters,
                generations: r.generations,
                refunds: r.refunds,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(UsageView {
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        group_by: if by_key { "key" } else { "day" },
        data,
        total,
    }))
}
