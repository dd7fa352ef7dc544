//! Team members: list, invite by link, accept, remove, leave.

mod accept_invite;
mod create_invite;
mod leave_team;
mod list_members;
mod remove_member;

pub use accept_invite::*;
pub use create_invite::*;
pub use leave_team::*;
pub use list_members::*;
pub use remove_member::*;

#[cfg(feature = "ssr")]
pub(crate) fn team_error(e: weir_core::team::TeamError) -> crate::error::AppError {
    use crate::error::AppError;
    use weir_core::team::TeamError;
    match e {
        TeamError::LastOwner => AppError::Invalid(
            "A team needs an owner: make someone else owner before the last owner leaves.".into(),
        ),
        TeamError::InviteInvalid => {
            AppError::Invalid("This invitation is not valid: it was used or has expired.".into())
        }
        TeamError::NotFound(_) => AppError::NotFound,
        TeamError::NotAllowed => {
            AppError::Forbidden("Your role in this team does not allow this.".into())
        }
        e => crate::ssr::internal("team membership", e),
    }
}
