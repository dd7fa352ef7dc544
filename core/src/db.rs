//! The database handle: one pool for SQLite or PostgreSQL chosen by URL, migrations, and the
//! write-transaction rule (SQLite writes always start with `BEGIN IMMEDIATE`).
//!
//! All SQL in Weir goes through the sqlx `Any` driver with `$N` placeholders, which both
//! backends accept, so there is one code path for both. Timestamps are stored as integer
//! Unix milliseconds and money as integer micro-units, so no type needs a backend-specific
//! mapping. DDL that must differ lives in one migrations folder per backend.

use std::{
    path::Path,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
    Any, AnyPool, ConnectOptions, Executor, Transaction,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a `DATABASE_URL`.
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }
}

/// Errors of the database layer. Details are for logs, never for API callers.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("cannot create the directory for the SQLite file: {0}")]
    CreateDir(#[source] std::io::Error),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// From a thread's own SQLite connection (see [`crate::writer`]).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl DbError {
    /// A `UNIQUE` (or primary key) constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(d)) => d.is_unique_violation(),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
        }
    }
}

/// Pool settings; the defaults suit one server process.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A cheap-to-clone handle to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// Where write transactions run. On SQLite a pool of exactly one connection, so that
    /// writers queue in-process (FIFO, no latency) instead of colliding on the file lock and
    /// sleeping in SQLite's busy handler (1, 2, 5, 10... ms); on PostgreSQL the main pool.
    writer: AnyPool,
    backend: Backend,
    /// The SQLite file, for connections of its own ([`crate::writer::open_sqlite`]); `None`
    /// for PostgreSQL and in-memory SQLite.
    sqlite_file: Option<std::sync::Arc<Path>>,
    /// Set by the checkpointer when the WAL has grown past [`WAL_RESTART_FRAMES`]: whoever
    /// writes on a connection of its own (the billing committer) checkpoints there, between
    /// its transactions, so that the WAL can start over ([`Db::take_wal_restart`]).
    wal_restart: Arc<AtomicBool>,
    /// Alive while any clone of this handle is: the checkpointer thread stops when it goes.
    _alive: Arc<()>,
}

impl Db {
    /// Connects to `url` (creating the SQLite file and its directory if needed). Does not migrate.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let in_memory = backend == Backend::Sqlite && url.contains(":memory:");
        let pool_options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(settings.acquire_timeout)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the one writer; NORMAL is durable under WAL
                            // except for the last commits on power loss; the busy timeout makes a
                            // second writer wait instead of failing with SQLITE_BUSY. No commit
                            // checkpoints the WAL inline (at unpredictable commits, with two
                            // fsyncs): `spawn_checkpointer` does it in the background. A new
                            // database gets 1 KiB pages: a commit copies each page it touched
                            // into the WAL, and the request path's small transactions touch a
                            // few rows on a few pages each, so smaller pages are less to copy,
                            // checksum and write back (measured at one connection: p99 ~2.1 ms
                            // instead of ~4 ms on ext4, p50 -10 us). Ignored for an existing file.
                            conn.execute(
                                "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                             PRAGMA wal_autocheckpoint = 0;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = pool_options(settings.max_connections)
            .connect_with(options.clone())
            .await?;
        let writer = if backend == Backend::Sqlite && !in_memory {
            pool_options(1).connect_with(options).await?
        } else {
            pool.clone()
        };
        let wal_restart = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(());
        let sqlite_file = (backend == Backend::Sqlite && !in_memory)
            .then(|| sqlite_path(&url))
            .flatten();
        if let Some(file) = &sqlite_file {
            spawn_checkpointer(file.clone(), wal_restart.clone(), Arc::downgrade(&alive));
        }
        Ok(Db {
            pool,
            writer,
            backend,
            sqlite_file,
            wal_restart,
            _alive: alive,
        })
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True (once) if the WAL should be checkpointed by the connection that writes, between
    /// its transactions (see the field). Cheap: one atomic swap.
    pub fn take_wal_restart(&self) -> bool {
        self.wal_restart.load(Ordering::Relaxed) && self.wal_restart.swap(false, Ordering::AcqRel)
    }

    /// The SQLite database file, unless the database is PostgreSQL or in memory.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// The pool for reads (and, on PostgreSQL, writes).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for single-statement writes outside [`begin_write`](Self::begin_write): on
    /// SQLite the one writer connection (see the field's doc), on PostgreSQL the main pool.
    pub fn write_pool(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail with
    /// `SQLITE_BUSY` without ever waiting on the busy handler.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pools, waiting (at most [`CLOSE_WAIT`] each) for connections in use to be
    /// returned. The wait is bounded because a connection whose return is lost (a task
    /// cancelled at the wrong moment; sqlx's close then waits for a permit that never comes)
    /// must not keep a process, or a test, from ending: what is left is closed by the OS.
    pub async fn close(&self) {
        for (name, pool) in [("writer", &self.writer), ("pool", &self.pool)] {
            if tokio::time::timeout(CLOSE_WAIT, pool.close())
                .await
                .is_err()
            {
                tracing::warn!(pool = name, "database connections still in use at close");
            }
        }
    }
}

/// How long [`Db::close`] waits for each pool's connections to come back.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Cuts `items` into slices of power-of-two lengths up to `max` (largest first), for
/// multi-row statements: a connection's prepared-statement cache then holds a few shapes of
/// each statement instead of one per row count, and no statement carries so many parameters
/// that binding them gets slow (SQLite looks each `$N` name up in a list: quadratic).
pub fn chunked<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let mut n = max.max(1).min(rest.len());
        n = 1 << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// How often the WAL is copied back into the SQLite database file while it grows. Often, so
/// that each checkpoint's `fsync` of the WAL has little to write out: the kernel submits that
/// writeback on the calling thread without yielding the core, so on a core shared with the
/// request path a checkpoint every 250 ms (~2 MB of WAL at 9,000 requests a second) held it
/// for ~1 ms at a time, which showed at the one-connection p99 (+846 µs added at 250 ms,
/// +605 µs at 50 ms, +607 µs at 20 ms, +556 µs with the database on tmpfs; `bench/run`,
/// 2026-12-02, README "Performance").
const CHECKPOINT_BUSY: Duration = Duration::from_millis(20);

/// The longest wait between two checkpoints: the wait doubles from [`CHECKPOINT_BUSY`] up to
/// this after each checkpoint that found the WAL as it was, so an idle server wakes once a
/// second rather than fifty times.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// WAL frames (pages) past which the WAL should start over.
pub(crate) const WAL_RESTART_FRAMES: i64 = 8_192;

/// Checkpoints the WAL every [`CHECKPOINT_BUSY`] while it grows (backing off to
/// [`CHECKPOINT_IDLE`] while it does not) on a thread of its own, with its own connection, at
/// the lowest CPU priority (`nice` 19), so that the copying gets little of a core the request
/// path wants (the kernel's part of an `fsync` is not preempted: hence small checkpoints, and
/// often). `PASSIVE`: it never blocks a writer, so commits stay an append to the WAL.
///
/// A checkpoint beside a busy writer never copies the frames appended while it ran, so under
/// steady writes the WAL could never start over. Once it holds more than
/// [`WAL_RESTART_FRAMES`], this thread makes what it copied durable (an `fsync` of the
/// database file) and raises `restart`: the connection that writes (the billing committer)
/// then checkpoints between two of its transactions, where only the few frames of the last
/// milliseconds remain to be synced and copied, and its next transaction starts the WAL
/// over. With no committer there is little writing, and this thread's own checkpoint
/// completes, which lets the next writer start the WAL over just the same. Stops when every
/// clone of the [`Db`] is gone.
fn spawn_checkpointer(file: Arc<Path>, restart: Arc<AtomicBool>, alive: std::sync::Weak<()>) {
    let started = std::thread::Builder::new()
        .name("weir-checkpoint".into())
        .spawn(move || {
            // Only this thread: `setpriority` with a thread id sets that thread's nice value.
            if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19)
            {
                tracing::debug!(error = %e, "could not lower the checkpointer's priority");
            }
            let mut conn = None;
            let mut db_file = None;
            let mut every = CHECKPOINT_BUSY;
            let mut last_frames = None;
            while alive.strong_count() > 0 {
                std::thread::sleep(every);
                if conn.is_none() {
                    // The file exists once the pool has connected; migrations may still run.
                    match crate::writer::open_sqlite(&file) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "checkpointer could not open the database");
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_ref() else { continue };
                let frames = match crate::writer::checkpoint(c) {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        continue;
                    }
                };
                // Every commit appends frames, and a restart starts the count over: the
                // same count twice means nothing was written in between.
                every = if last_frames == Some(frames) {
                    (every * 2).min(CHECKPOINT_IDLE)
                } else {
                    CHECKPOINT_BUSY
                };
                last_frames = Some(frames);
                if frames > WAL_RESTART_FRAMES && !restart.load(Ordering::Acquire) {
                    if db_file.is_none() {
                        db_file = std::fs::File::open(&*file).ok();
                    }
                    if let Some(f) = &db_file {
                        if let Err(e) = f.sync_data() {
                            tracing::warn!(error = %e, "syncing the database file failed");
                        }
                    }
                    restart.store(true, Ordering::Release);
                }
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "the WAL checkpointer thread failed to start");
    }
}

/// The file of a prepared `sqlite://PATH?...` URL.
fn sqlite_path(url: &str) -> Option<std::sync::Arc<Path>> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    (!path.is_empty() && path != ":memory:").then(|| Arc::from(Path::new(path)))
}

/// Makes sure the SQLite file can be created: its directory exists and `mode=rwc` is set.
fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(DbError::CreateDir)?;
            }
        }
    }
    if query.contains("mode=") {
        Ok(url.to_owned())
    } else if query.is_empty() {
        Ok(format!("sqlite://{path}?mode=rwc"))
    } else {
        Ok(format!("sqlite://{path}?{query}&mode=rwc"))
    }
}

/// Increments the named counter in `instance_setting` (creating it at 1). Counters ("epochs")
/// tell every server process that some cached state must be reloaded.
pub async fn bump_counter<'e, E>(executor: E, name: &str) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO instance_setting (name, value, updated_at) VALUES ($1, '1', $2) \
         ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(instance_setting.value AS BIGINT) + 1 AS TEXT), updated_at = $2",
    )
    .bind(name)
    .bind(now_ms())
    .execute(executor)
    .await?;
    Ok(())
}

/// This deployment's id: made once by the first server (random), then shared by every
/// replica of the database. It keeps the Redis counters of two deployments sharing one Redis
/// apart (their keys and teams have the same row ids).
pub async fn instance_id(db: &Db) -> Result<String, DbError> {
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO instance_setting (name, value, updated_at) VALUES ('instance_id', $1, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&fresh[..12])
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let id: String =
        sqlx::query_scalar("SELECT value FROM instance_setting WHERE name = 'instance_id'")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(id)
}

/// Reads the named counter (0 before its first bump).
pub async fn read_counter(db: &Db, name: &str) -> Result<i64, DbError> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM instance_setting WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// Current time as Unix milliseconds, the one timestamp representation in the database.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_gets_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/weir.db");
        let url = format!("sqlite://{}", path.display());
        let prepared = prepare_sqlite_url(&url).unwrap();
        assert_eq!(prepared, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:").unwrap(),
            "sqlite://:memory:?mode=rwc"
        );
    }

    /// A new SQLite file gets small pages (see `Db::connect`); an existing one keeps its own.
    #[tokio::test]
    async fn new_sqlite_files_get_small_pages() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |url: String| async move {
            let db = Db::connect(&url, &PoolSettings::default()).await.unwrap();
            db.migrate().await.unwrap();
            let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(db.pool())
                .await
                .unwrap();
            db.pool().close().await;
            size
        };
        let fresh = dir.path().join("fresh.db");
        assert_eq!(
            page_size(format!("sqlite://{}", fresh.display())).await,
            1024
        );
        let old = dir.path().join("old.db");
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(page_size(format!("sqlite://{}", old.display())).await, 4096);
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::from_url("sqlite://x").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("postgres://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }
}
