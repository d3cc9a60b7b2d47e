//! Service-level clocks: deadlines counted in Chinese working days.

pub mod calendar;

pub use calendar::{Calendar, Deadline, beijing};
