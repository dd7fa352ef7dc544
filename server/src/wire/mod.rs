//! Wire formats: one module per format, each a set of pure codecs between that format's JSON
//! and SSE and the canonical types. No IO.

pub mod anthropic;
pub mod json;
pub mod openai_chat;
pub mod openai_embeddings;

#[cfg(test)]
mod fuzz_tests;
