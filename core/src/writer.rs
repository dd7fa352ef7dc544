//! Statements inside one write transaction, over either a pooled sqlx transaction or a
//! SQLite connection owned by the calling thread.
//!
//! sqlx runs every SQLite statement on a worker thread of its own and hands each result back
//! through a channel: four statements cost four thread round trips, which at one request at a
//! time is most of a request's cost (README, "Performance"). The billing committer therefore
//! keeps its own SQLite connection on its own thread ([`Writer::Conn`]) and runs whole batches
//! there with direct calls. PostgreSQL, and SQLite writes elsewhere, go through the pool
//! ([`Writer::Pool`]). The billing and request-log statements are written once, against
//! [`WriteTx`], and run the same on both.
//!
//! SQL uses `$N` placeholders, as everywhere in Weir; for the direct connection they are
//! rewritten to `?N`, which SQLite binds by number without looking names up. Statements are
//! [`Sql`] values built once per process (a `LazyLock` static, or [`SqlByRows`] for the
//! multi-row ones): no text is formatted or rewritten per request, only looked up in the
//! connection's statement cache.

use std::{borrow::Cow, path::Path, sync::OnceLock};

use sqlx::{any::AnyTypeInfoKind, Any, Row as _, Transaction, TypeInfo as _, ValueRef as _};

use crate::db::{Db, DbError};

/// A bound parameter.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}

/// A returned value. Weir's tables hold only integers and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

fn decode_error(what: &str) -> DbError {
    DbError::Sqlx(sqlx::Error::Decode(format!("expected {what}").into()))
}

impl Cell {
    pub fn int(&self) -> Result<i64, DbError> {
        match self {
            Cell::Int(v) => Ok(*v),
            _ => Err(decode_error("an integer")),
        }
    }

    pub fn opt_int(&self) -> Result<Option<i64>, DbError> {
        match self {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            Cell::Text(_) => Err(decode_error("an integer or NULL")),
        }
    }

    /// `Int(v)`, or `self` when `v` is `None`.
    pub fn or_int(self, v: Option<i64>) -> Cell {
        v.map_or(self, Cell::Int)
    }

    pub fn text(&mut self) -> Result<String, DbError> {
        match self {
            Cell::Text(s) => Ok(std::mem::take(s)),
            _ => Err(decode_error("text")),
        }
    }
}

/// A returned row, in the order of the statement's `RETURNING` / `SELECT` list.
pub type Row = Vec<Cell>;

/// A statement's text in both spellings: `$N` placeholders for sqlx (PostgreSQL, and SQLite
/// through the pool), `?N` for the committer's own SQLite connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sql {
    dollar: Box<str>,
    numbered: Box<str>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            dollar: text.into(),
            numbered: numbered(text).into(),
        }
    }

    /// The `$N` spelling.
    pub fn dollar(&self) -> &str {
        &self.dollar
    }

    /// The `?N` spelling.
    pub fn numbered(&self) -> &str {
        &self.numbered
    }
}

/// The text of one multi-row statement for each chunk size [`chunked`](crate::db::chunked)
/// produces (1, 2, 4, …, 32 rows), each built the first time it is needed. Meant for a
/// `static` per statement.
pub struct SqlByRows([OnceLock<Sql>; SqlByRows::SIZES]);

impl SqlByRows {
    const SIZES: usize = 6;

    pub const fn new() -> SqlByRows {
        SqlByRows([const { OnceLock::new() }; SqlByRows::SIZES])
    }

    /// The statement for `rows` rows, made by `build(rows)` the first time; built afresh (not
    /// kept) for a count that is not a power of two up to 32.
    pub fn get(
        &'static self,
        rows: usize,
        build: impl FnOnce(usize) -> String,
    ) -> Cow<'static, Sql> {
        let slot = rows.trailing_zeros() as usize;
        match self.0.get(slot) {
            Some(cell) if rows.is_power_of_two() => {
                Cow::Borrowed(cell.get_or_init(|| Sql::new(&build(rows))))
            }
            _ => Cow::Owned(Sql::new(&build(rows))),
        }
    }
}

impl Default for SqlByRows {
    fn default() -> Self {
        SqlByRows::new()
    }
}

/// Where write transactions come from.
pub enum Writer<'a> {
    /// A pooled sqlx transaction (`BEGIN IMMEDIATE` on SQLite) per [`begin`](Self::begin).
    Pool(&'a Db),
    /// This thread's own SQLite connection (see [`open_sqlite`]).
    Conn(&'a mut rusqlite::Connection),
}

impl Writer<'_> {
    pub async fn begin(&mut self) -> Result<WriteTx<'_>, DbError> {
        Ok(WriteTx(match self {
            Writer::Pool(db) => Inner::Owned(db.begin_write().await?),
            Writer::Conn(conn) => {
                run(conn, "BEGIN IMMEDIATE")?;
                Inner::Conn(conn)
            }
        }))
    }
}

/// An open write transaction. Dropped without [`commit`](Self::commit), it rolls back.
pub struct WriteTx<'a>(Inner<'a>);

enum Inner<'a> {
    Owned(Transaction<'static, Any>),
    Borrowed(&'a mut Transaction<'static, Any>),
    Conn(&'a mut rusqlite::Connection),
    Done,
}

impl<'a> WriteTx<'a> {
    /// Statements inside a sqlx transaction the caller owns (and commits).
    pub fn within(tx: &'a mut Transaction<'static, Any>) -> WriteTx<'a> {
        WriteTx(Inner::Borrowed(tx))
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, sql: &Sql, args: &[Arg<'_>]) -> Result<u64, DbError> {
        match &mut self.0 {
            Inner::Owned(tx) => Ok(bind(sqlx::query(sql.dollar()), args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
            Inner::Borrowed(tx) => Ok(bind(sqlx::query(sql.dollar()), args)
                .execute(&mut ***tx)
                .await?
                .rows_affected()),
            Inner::Conn(conn) => {
                let mut st = prepare(conn, sql.numbered(), args)?;
                Ok(st.raw_execute()? as u64)
            }
            Inner::Done => Err(DbError::Sqlx(sqlx::Error::PoolClosed)),
        }
    }

    /// Runs a statement that returns rows (a `SELECT`, or a write with `RETURNING`).
    pub async fn fetch(&mut self, sql: &Sql, args: &[Arg<'_>]) -> Result<Vec<Row>, DbError> {
        let rows = match &mut self.0 {
            Inner::Owned(tx) => {
                bind(sqlx::query(sql.dollar()), args)
                    .fetch_all(&mut **tx)
                    .await?
            }
            Inner::Borrowed(tx) => {
                bind(sqlx::query(sql.dollar()), args)
                    .fetch_all(&mut ***tx)
                    .await?
            }
            Inner::Conn(conn) => {
                let mut st = prepare(conn, sql.numbered(), args)?;
                let n = st.column_count();
                let mut rows = st.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        row.push(match r.get_ref(i)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(v) => Cell::Int(v),
                            ValueRef::Text(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            ValueRef::Real(_) | ValueRef::Blob(_) => {
                                return Err(decode_error("an integer or text"))
                            }
                        });
                    }
                    out.push(row);
                }
                return Ok(out);
            }
            Inner::Done => return Err(DbError::Sqlx(sqlx::Error::PoolClosed)),
        };
        rows.iter().map(sqlx_row).collect()
    }

    pub async fn commit(mut self) -> Result<(), DbError> {
        match std::mem::replace(&mut self.0, Inner::Done) {
            Inner::Owned(tx) => tx.commit().await?,
            Inner::Conn(conn) => run(conn, "COMMIT")?,
            Inner::Borrowed(_) | Inner::Done => {}
        }
        Ok(())
    }

    /// Commits if `res` is `Ok`, rolls back if it is an error, and returns `res` (or the
    /// commit's or rollback's own failure).
    pub async fn end<T, E: From<DbError>>(self, res: Result<T, E>) -> Result<T, E> {
        match res {
            Ok(v) => {
                self.commit().await?;
                Ok(v)
            }
            Err(e) => {
                self.rollback().await?;
                Err(e)
            }
        }
    }

    pub async fn rollback(mut self) -> Result<(), DbError> {
        match std::mem::replace(&mut self.0, Inner::Done) {
            Inner::Owned(tx) => tx.rollback().await?,
            Inner::Conn(conn) => run(conn, "ROLLBACK")?,
            Inner::Borrowed(_) | Inner::Done => {}
        }
        Ok(())
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if let Inner::Conn(conn) = &mut self.0 {
            if !conn.is_autocommit() {
                let _ = run(conn, "ROLLBACK");
            }
        }
    }
}

/// A parameterless statement, prepared once per connection.
fn run(conn: &rusqlite::Connection, sql: &str) -> Result<(), DbError> {
    conn.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match *a {
            Arg::Int(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
        };
    }
    q
}

fn sqlx_row(r: &sqlx::any::AnyRow) -> Result<Row, DbError> {
    let mut row = Vec::with_capacity(r.len());
    for i in 0..r.len() {
        let raw = r.try_get_raw(i)?;
        let cell = if raw.is_null() {
            Cell::Null
        } else {
            let kind = raw.type_info().kind();
            match kind {
                AnyTypeInfoKind::Text => Cell::Text(r.try_get(i)?),
                AnyTypeInfoKind::SmallInt
                | AnyTypeInfoKind::Integer
                | AnyTypeInfoKind::BigInt
                | AnyTypeInfoKind::Bool => Cell::Int(r.try_get(i)?),
                _ => {
                    let _ = raw.type_info().name();
                    return Err(decode_error("an integer or text"));
                }
            }
        };
        row.push(cell);
    }
    Ok(row)
}

/// `$N` → `?N` (SQLite binds `?N` to parameter N directly).
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

/// `sql` in the `?N` spelling, prepared (or taken from the connection's cache) and bound.
fn prepare<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>, DbError> {
    let mut st = conn.prepare_cached(sql)?;
    for (i, a) in args.iter().enumerate() {
        match *a {
            Arg::Int(v) => st.raw_bind_parameter(i + 1, v)?,
            Arg::OptInt(v) => st.raw_bind_parameter(i + 1, v)?,
            Arg::Text(v) => st.raw_bind_parameter(i + 1, v)?,
            Arg::OptText(v) => st.raw_bind_parameter(i + 1, v)?,
        }
    }
    Ok(st)
}

/// A passive checkpoint on `conn`: copies WAL frames into the database file without waiting
/// for anyone. Returns the number of frames in the WAL.
pub fn checkpoint(conn: &rusqlite::Connection) -> Result<i64, DbError> {
    let mut st = conn.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?;
    let mut rows = st.raw_query();
    let frames = match rows.next()? {
        Some(row) => row.get::<_, i64>(1)?,
        None => 0,
    };
    Ok(frames)
}

/// Opens a connection to the SQLite file at `path` with the settings of the pool's
/// connections (WAL, `synchronous = NORMAL`, busy timeout, foreign keys, no automatic
/// checkpoints) and a statement cache large enough for every batch shape.
pub fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
         PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::{
        borrow::Cow,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[test]
    fn statements_are_built_once_per_chunk_size() {
        static SQL: SqlByRows = SqlByRows::new();
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let build = |rows: usize| {
            BUILT.fetch_add(1, Ordering::Relaxed);
            format!("SELECT {}", vec!["$1"; rows].join(", "))
        };
        let a = SQL.get(4, build);
        let b = SQL.get(4, build);
        assert!(matches!((&a, &b), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y)));
        assert_eq!(a.dollar(), "SELECT $1, $1, $1, $1");
        assert_eq!(a.numbered(), "SELECT ?1, ?1, ?1, ?1");
        assert_eq!(BUILT.load(Ordering::Relaxed), 1);
        // Every size chunked() makes has a slot; others are built each time, not kept.
        for rows in [1, 2, 8, 16, 32] {
            assert!(matches!(SQL.get(rows, build), Cow::Borrowed(_)));
        }
        assert_eq!(BUILT.load(Ordering::Relaxed), 6);
        for rows in [3, 64, 0] {
            let s = SQL.get(rows, build);
            assert!(matches!(s, Cow::Owned(_)));
            assert_eq!(s.dollar(), build(rows));
        }
    }
}
