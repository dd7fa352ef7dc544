//! `AppError`: the one error type every console server function returns. Its messages are
//! written for the person using the console; database and internal details are logged on the
//! server and never leave it (see `ssr::internal`).

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Not signed in (or the session ended): the page offers the log-in link.
    #[error("Please log in to continue.")]
    Unauthorized,
    /// Signed in, but this action needs another role, or the CSRF check failed.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing with this id in the current team (also what another team's ids give).
    #[error("Not found.")]
    NotFound,
    /// A field of the form is wrong: shown beside that field.
    #[error("{message}")]
    Field { field: String, message: String },
    /// The request is wrong as a whole: shown above the form.
    #[error("{0}")]
    Invalid(String),
    /// Too many attempts: try again later.
    #[error("{0}")]
    TooMany(String),
    /// Something failed on the server; the details are in its log.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl AppError {
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        AppError::Field {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthorized => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound => 404,
            AppError::Field { .. } | AppError::Invalid(_) => 400,
            AppError::TooMany(_) => 429,
            AppError::Internal => 500,
        }
    }

    /// The message for `field`, if this error is about it.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            AppError::Field { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Arguments that do not decode are the form's fault, not the server's.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::Deserialization(_) => {
                let e = AppError::Invalid("The form was incomplete or malformed.".into());
                // Answered 400, not 500: the body never reached the function's own `run`.
                #[cfg(feature = "ssr")]
                let e = crate::ssr::respond(e);
                e
            }
            _ => AppError::Internal,
        }
    }
}
