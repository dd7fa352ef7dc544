//! Billing: the money engine. This first part is pricing: the charge for a usage at a tariff,
//! and the worst case reserved before a request runs.

mod pricing;

pub use pricing::{price, worst_case, Charge, Usage};
