//! Who is looking at the page.

mod viewer;

pub use viewer::*;
