//! The PostgreSQL pool and the one way to use it from async code: `Db::run`
//! takes a closure over `&mut PgConnection`, runs it on tokio's blocking pool
//! inside the caller's tracing span, and never blocks the async runtime.
//! Migrations are embedded here and applied by `key-service migrate`.
//!
//! While the database is known to be down (the last attempt to open or
//! check out a connection failed and none has been opened since), a call
//! waits at most [`DOWN_TIMEOUT`] for a connection instead of
//! `database.pool_timeout_ms`, so a request is answered 503 at once rather
//! than after the whole timeout; r2d2 keeps reconnecting in the background,
//! and the first connection it opens ends that state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, HandleError, LoggingErrorHandler, Pool,
    PooledConnection,
};
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
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(e) => is_connection_lost(e),
            DbError::Task(_) => false,
        }
    }
}

/// Whether a query failed because the connection to the database is gone
/// (the server stopped or restarted), rather than because of the query.
pub fn is_connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        e,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) | Error::BrokenTransactionManager
    )
}

/// Whether PostgreSQL refused a value for a NUL character (`\u0000`),
/// which neither `text` nor `jsonb` can hold: the client's to fix.
pub fn is_nul_refused(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("0x00") || m.contains("\\u0000")
        }
        _ => false,
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
        } else if matches!(&e, DbError::Query(q) if is_nul_refused(q)) {
            // A field that no check of its own caught: refused as a whole.
            crate::http::ApiError::unprocessable(
                "invalid_text",
                "a text field holds a NUL character (\\u0000), which is not accepted; nothing was changed",
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

/// How long a call waits for a connection while the database is known to
/// be down (see the module docs).
pub const DOWN_TIMEOUT: Duration = Duration::from_millis(250);

/// Whether the database is known to be down: set by every failure to open
/// or check out a connection, cleared by every connection opened.
#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
}

#[derive(Debug, Clone)]
struct HealthHook(Arc<Health>);

impl HandleError<diesel::r2d2::Error> for HealthHook {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        self.0.down.store(true, Ordering::SeqCst);
        // What r2d2 does by default.
        LoggingErrorHandler.handle_error(error);
    }
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for HealthHook {
    fn on_acquire(&self, _conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        self.0.down.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    timeout: Duration,
    health: Arc<Health>,
}

impl Db {
    /// Builds the pool without connecting: a service starts even while the
    /// database is down and reports it on `/readyz`.
    pub fn new(settings: &DatabaseSettings) -> Self {
        let manager = ConnectionManager::<PgConnection>::new(settings.url.expose_secret());
        let timeout = Duration::from_millis(settings.pool_timeout_ms);
        let health = Arc::new(Health::default());
        let hook = HealthHook(health.clone());
        let pool = Pool::builder()
            .max_size(settings.pool_max_size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(hook.clone()))
            .connection_customizer(Box::new(hook))
            .build_unchecked(manager);
        Self {
            pool,
            timeout,
            health,
        }
    }

    /// How long a call may wait for a connection right now.
    fn checkout_timeout(&self) -> Duration {
        if self.health.down.load(Ordering::SeqCst) {
            self.timeout.min(DOWN_TIMEOUT)
        } else {
            self.timeout
        }
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        let timeout = self.checkout_timeout();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool
                .get_timeout(timeout)
                .map_err(|e| E::from(DbError::Unavailable(e)))?;
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
