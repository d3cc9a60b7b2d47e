//! hotline-gateway: the integration gateway between the 12348 public legal-service hotline and
//! its partner systems.
//!
//! Data flows one way: partner wire → adapter → [`intake`] → [`store`] → [`delivery`] →
//! adapter → partner wire. The [`api`] serves the home systems, partner ingress and ops.

pub mod api;
pub mod app;
pub mod audit;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod delivery;
pub mod demo;
pub mod intake;
pub mod legal_aid;
pub mod lifecycle;
pub mod mapping_cli;
pub mod mask;
pub mod partners;
pub mod poller;
pub mod retention;
pub mod seal;
pub mod serve;
pub mod sla;
pub mod store;
pub mod subscriber;
pub mod telemetry;
pub mod time;
pub mod transfer;

pub use app::Gateway;
pub use config::Config;
