//! The console's server functions, one per file, grouped by area. Each one resolves its
//! caller through `crate::ssr` (session, CSRF, team and role), calls `weir-core`, and returns
//! an [`AppError`](crate::error::AppError) with a user-safe message. The types they return
//! are plain data, shared with the browser build.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod dashboard;
pub mod keys;
pub mod limits;
pub mod members;
pub mod session;
pub mod teams;
pub mod usage;
