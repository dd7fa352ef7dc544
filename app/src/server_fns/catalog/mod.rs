//! The model catalog with the prices a team pays, for `/models`, `/pricing` and the public
//! JSON list.

mod list_models;

pub use list_models::*;

use serde::{Deserialize, Serialize};

/// A price per million tokens after markup, in units of 1e-10 USD (exact: micro-USD list
/// price × (10,000 + markup basis points)).
pub type ScaledPrice = i64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelView {
    pub id: String,
    pub name: String,
    pub provider_id: String,
    pub provider: String,
    /// `chat` or `embedding`.
    pub kind: String,
    pub context_window: u32,
    pub max_output_tokens: Option<u32>,
    /// `tools`, `vision`, `reasoning`, `json_schema`.
    pub capabilities: Vec<String>,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub input: Option<ScaledPrice>,
    pub cached_input: Option<ScaledPrice>,
    pub cache_write: Option<ScaledPrice>,
    pub output: Option<ScaledPrice>,
    pub reasoning: Option<ScaledPrice>,
    /// Some channel can serve it right now.
    pub available: bool,
}

/// The capabilities the filters offer.
pub const CAPABILITIES: [&str; 4] = ["tools", "vision", "reasoning", "json_schema"];
