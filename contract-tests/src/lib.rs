//! Partner simulators and golden samples that pin every partner's wire format.
//!
//! The simulators speak real HTTP on loopback and check what they receive as strictly as the real
//! partner would; tests and the demo tell them how to misbehave.

pub mod behaviour;
pub mod golden;
pub mod home_cti_sim;
pub mod mapped_sim;
pub mod samples;
pub mod wait;
pub mod webhook_sim;
pub mod xsd;
