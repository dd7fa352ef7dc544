//! API keys of the current team: list, create (secret shown once), revoke.

mod create_key;
mod list_keys;
mod revoke_key;

pub use create_key::*;
pub use list_keys::*;
pub use revoke_key::*;
