//! Weir's server: configuration, the HTTP router that hosts the gateway API and the console,
//! and the process lifecycle (start-up, readiness, graceful shutdown).

pub mod canonical;
pub mod config;
pub mod console;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mock;
pub mod routing;
pub mod startup;
pub mod stripe;
pub mod tokens;
pub mod upstream;
pub mod wire;

pub use config::Config;
pub use http::{serve, AppState};
