//! Weir's domain and persistence, shared by the console (`weir-app`) and the gateway
//! (`weir-server`): the database, and (growing) money, keys, catalog, billing and metering.
//! No HTTP and no UI here.

pub mod db;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod writer;

pub use db::{Backend, Db, DbError, PoolSettings};
pub mod account;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod limits;
pub mod metering;
pub mod money;
pub mod responses;
pub mod team;
pub mod topup;
