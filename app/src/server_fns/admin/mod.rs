//! The operator's area: every team with its balance and spend (activate, deactivate, credit
//! and debit), and the catalog: channels, models, codenames, tariffs, imports and the audit
//! log. Callers who are not the operator get "not found".

mod add_channel;
mod add_model;
mod adjust_balance;
mod import_catalog;
mod list_audit;
mod list_channels;
mod list_models;
mod list_tariffs;
mod list_teams;
mod set_channel_enabled;
mod set_codename;
mod set_model_active;
mod set_tariff;
mod set_team_active;
mod test_channel;

pub use add_channel::*;
pub use add_model::*;
pub use adjust_balance::*;
pub use import_catalog::*;
pub use list_audit::*;
pub use list_channels::*;
pub use list_models::*;
pub use list_tariffs::*;
pub use list_teams::*;
pub use set_channel_enabled::*;
pub use set_codename::*;
pub use set_model_active::*;
pub use set_tariff::*;
pub use set_team_active::*;
pub use test_channel::*;
