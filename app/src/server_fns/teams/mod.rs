//! Teams: switch the current one, create another.

mod create_team;
mod switch_team;

pub use create_team::*;
pub use switch_team::*;
