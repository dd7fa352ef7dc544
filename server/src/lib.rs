//! Weir's server: configuration, the HTTP router that hosts the gateway API and the console,
//! and the process lifecycle (start-up, readiness, graceful shutdown).

pub mod config;
pub mod http;
pub mod mock;

pub use config::Config;
pub use http::{serve, AppState};
