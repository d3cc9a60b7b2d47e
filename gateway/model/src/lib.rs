//! The canonical ticket model: one shape that every partner's wire format translates to and from.
//!
//! Canonical JSON uses snake_case field names; enums serialize as lowercase English words.

mod event;
pub mod legal_aid;
mod ticket;
mod transfer;
pub mod validate;

pub use event::{Event, EventBody, EventKind, Satisfaction};
pub use ticket::{Caller, Ticket, TicketDraft, TicketKind, TicketStatus, Urgency, WITHHELD};
pub use transfer::{RefusalReason, TransferAnswer, TransferGrant, TransferOffer};
pub use validate::FieldError;

/// The system id of the 12348 home systems (the side that calls `/api/v1`).
pub const HOME: &str = "12348";
