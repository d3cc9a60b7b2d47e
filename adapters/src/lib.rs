//! Partner adapters. Each partner's transport, envelope, signature scheme and acknowledgement
//! semantics live here; the gateway only sees canonical messages and classified [`Outcome`]s.
//!
//! Data flows one way: partner wire → [`Adapter::decode`] → canonical → store → delivery →
//! [`Adapter::encode`] → [`Adapter::send`] → [`Adapter::classify`] → partner wire.

mod adapter;
pub mod bus;
pub mod http;
pub mod json;
pub mod legal_aid;
pub mod mapped;
pub mod mapping;
pub mod signature;
pub mod toml_locate;
pub mod webhook;

pub use adapter::{
    Adapter, Attempt, EncodeError, Inbound, InboundRequest, IngressError, IngressReply,
    OutboundMessage, Outcome, PollBatch, PolledItem, TicketRef, TransportError, WireRequest,
    WireResponse, deliver,
};
