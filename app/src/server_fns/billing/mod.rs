//! The team's balance and ledger, and Stripe top-ups.

mod list_ledger;
mod list_topups;
mod start_topup;

pub use list_ledger::*;
pub use list_topups::*;
pub use start_topup::*;
