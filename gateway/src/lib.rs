//! hotline-gateway: the integration gateway between the 12348 public legal-service hotline and
//! its partner systems.

pub mod config;
pub mod store;
