//! The team's balance and ledger.

mod list_ledger;

pub use list_ledger::*;
