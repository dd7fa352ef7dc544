//! The console's pages, one module per area.

mod admin;
mod auth;
mod billing;
mod dashboard;
mod home;
mod keys;
mod members;
mod models;
mod not_found;
mod settings;
mod usage;

pub use admin::{
    AdminAuditPage, AdminChannelsPage, AdminImportPage, AdminModelsPage, AdminPage,
    AdminTariffsPage, AdminTeamsPage,
};
pub use auth::{LogInPage, LogOutPage, SignUpPage};
pub use billing::BillingPage;
pub use dashboard::DashboardPage;
pub use home::HomePage;
pub use keys::KeysPage;
pub use members::{InvitePage, MembersPage};
pub use models::{ModelsPage, PricingPage, QuickstartPage};
pub use not_found::NotFoundPage;
pub use settings::SettingsPage;
pub use usage::UsagePage;
