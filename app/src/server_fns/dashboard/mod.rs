//! The dashboard's numbers.

mod load_dashboard;

pub use load_dashboard::*;
