//! A new ticket for a store directly, shared by the store suite and the gateway tests (each test
//! crate includes this file).

use contract_tests::samples::random_draft;
use hotline_gateway::store::NewTicket;
use hotline_model::{Event, EventBody, HOME, Ticket};

/// A dispatch from the home system with `external_id` as its number and idempotency key, to
/// `targets`.
pub fn new_ticket(external_id: &str, targets: &[&str]) -> NewTicket {
    let ticket = Ticket::new(HOME, Some(external_id.into()), random_draft());
    let event = Event::new(
        ticket.id,
        HOME,
        EventBody::Dispatch {
            units: vec![],
            note: None,
        },
    );
    NewTicket {
        keys: vec![format!("external_id:{external_id}")],
        numbers: vec![(HOME.into(), external_id.into())],
        caller_hash: None,
        repeat_since: None,
        clocks: vec![],
        targets: targets.iter().map(|s| s.to_string()).collect(),
        ticket,
        event,
        handoff: None,
        nonce: None,
    }
}
