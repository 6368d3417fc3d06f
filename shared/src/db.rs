//! The PostgreSQL pool and the one way to use it from async code: `Db::run`
//! takes a closure over `&mut PgConnection`, runs it on tokio's blocking pool
//! inside the caller's tracing span, and never blocks the async runtime.
//! Migrations are embedded here and applied by `key-service migrate`.

use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use crate::settings::DatabaseSettings;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database is down or saturated.
    #[error("no database connection available")]
    Unavailable(#[source] diesel::r2d2::PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("database task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl DbError {
    /// Whether this is the database being unreachable rather than a bad query.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            DbError::Unavailable(_)
                | DbError::Query(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                ))
                | DbError::Query(Error::BrokenTransactionManager)
        )
    }
}

impl From<DbError> for crate::http::ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            crate::http::ApiError::unavailable(
                "database_unavailable",
                "the database is unavailable; nothing was changed, try again",
                e,
            )
        } else {
            crate::http::ApiError::internal(e)
        }
    }
}

impl From<diesel::result::Error> for crate::http::ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Builds the pool without connecting: a service starts even while the
    /// database is down and reports it on `/readyz`.
    pub fn new(settings: &DatabaseSettings) -> Self {
        let manager = ConnectionManager::<PgConnection>::new(settings.url.expose_secret());
        let pool = Pool::builder()
            .max_size(settings.pool_max_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(settings.pool_timeout_ms))
            .test_on_check_out(true)
            .build_unchecked(manager);
        Self { pool }
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get().map_err(|e| E::from(DbError::Unavailable(e)))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e)))?
    }

    /// `SELECT 1`: readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        use diesel::RunQueryDsl;
        self.run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("Failed to run migrations: {e}"))?;
    Ok(applied.len())
}
