//! Test support: a fresh, migrated database per test, on SQLite by default or on PostgreSQL
//! when `TEST_DATABASE_URL` names one. On PostgreSQL each test gets its own schema, so tests
//! and concurrent runs never see each other's rows.

use crate::db::{Backend, Db, DbError, PoolSettings};

/// A migrated database that lives as long as this value.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    /// Creates and migrates a new empty database.
    pub async fn new() -> Result<TestDb, DbError> {
        let t = TestDb::unmigrated().await?;
        t.db.migrate().await?;
        Ok(t)
    }

    /// Creates a new empty database without running any migration (for migration tests).
    pub async fn unmigrated() -> Result<TestDb, DbError> {
        let base = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
        let settings = PoolSettings::default();
        if base.is_empty() || Backend::from_url(&base)? == Backend::Sqlite {
            let dir = tempfile::tempdir().map_err(DbError::CreateDir)?;
            let url = format!("sqlite://{}/weir.db", dir.path().display());
            let db = Db::connect(&url, &settings).await?;
            return Ok(TestDb {
                db,
                url,
                _dir: Some(dir),
                pg_schema: None,
            });
        }
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Db::connect(
            &base,
            &PoolSettings {
                max_connections: 1,
                ..settings.clone()
            },
        )
        .await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let db = Db::connect(&url, &settings).await?;
        Ok(TestDb {
            db,
            url,
            _dir: None,
            pg_schema: Some((base, schema)),
        })
    }

    /// Drops the PostgreSQL schema of this test (SQLite files go with the temp dir).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((base, schema)) = self.pg_schema {
            if let Ok(admin) = Db::connect(
                &base,
                &PoolSettings {
                    max_connections: 1,
                    ..PoolSettings::default()
                },
            )
            .await
            {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(admin.pool())
                    .await;
                admin.close().await;
            }
        }
    }
}
