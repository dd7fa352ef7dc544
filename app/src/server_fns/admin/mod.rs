//! The operator's area: every team with its balance and spend; activate, deactivate, credit
//! and debit. Callers who are not the operator get "not found".

mod adjust_balance;
mod list_teams;
mod set_team_active;

pub use adjust_balance::*;
pub use list_teams::*;
pub use set_team_active::*;
