//! How simulators answer, and what they record.

use std::time::{Duration, Instant};

use serde_json::Value;

/// How the simulator answers deliveries.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// 200 with its ticket number.
    Ack,
    /// `status` for the next `times` deliveries, then `Ack`.
    FailTimes { times: u32, status: u16 },
    /// `status` for every delivery.
    Fail { status: u16 },
    /// 429 with `Retry-After: secs` for the next `times` deliveries, then `Ack`.
    RetryAfter { times: u32, secs: u64 },
    /// 503 for about `percent` % of deliveries, `Ack` otherwise.
    Flaky { percent: u32 },
    /// 202 at once, then a signed `ack` message to the gateway after `delay`.
    Async { delay: Duration },
    /// 200 with a body that is not an acknowledgement.
    Malformed,
    /// 200 with its ticket number, after `delay` (a partner that takes its time).
    Slow { delay: Duration },
    /// HTTP 200 with this partner result code, for the next `times` deliveries, then `Ack`.
    Code { code: String, times: u32 },
    /// 307 to `to` for every delivery (a partner, or something in between, pointing elsewhere).
    Redirect { to: String },
    /// Every kind of fault, at random: 500, an answer slower than `slow`, a dropped connection,
    /// a malformed acknowledgement; about one delivery in five still goes through.
    Chaos { slow: Duration },
}

/// One HTTP request that reached the simulator.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub message_id: String,
    pub status: u16,
}

/// One message the simulator took (first time only).
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub message_type: String,
    pub envelope: Value,
    pub partner_number: String,
}

impl Behaviour {
    /// The behaviour for this delivery, counting down the ones that expire.
    pub fn take(current: &mut Behaviour) -> Behaviour {
        let now = current.clone();
        match current {
            Behaviour::FailTimes { times, .. }
            | Behaviour::RetryAfter { times, .. }
            | Behaviour::Code { times, .. } => {
                *times = times.saturating_sub(1);
                if *times == 0 {
                    *current = Behaviour::Ack;
                }
            }
            _ => {}
        }
        now
    }
}

/// How a simulated call centre answers transfer offers.
#[derive(Debug, Clone, PartialEq)]
pub enum CtiBehaviour {
    /// Takes the call: a dial target, a one-time token, an expiry a minute ahead.
    Grant,
    /// Declines with this reason.
    Refuse(hotline_model::RefusalReason),
    /// Answers after this long (longer than the gateway waits: a CTI that never answers).
    Silent(Duration),
    /// Answers with one of its error answers (HTTP 500 where the dialect mirrors statuses).
    Error,
}

/// Where a simulated call centre lets the `n`th caller through.
pub struct Seat {
    pub dial_target: String,
    pub token: String,
    pub partner_ref: Option<String>,
}

impl CtiBehaviour {
    /// The answer to an offer; `None` for [`CtiBehaviour::Error`], which each simulator answers
    /// in its own way.
    pub async fn answer(&self, seat: Seat) -> Option<hotline_model::TransferAnswer> {
        use chrono::Timelike;
        use hotline_model::{RefusalReason, TransferAnswer, TransferGrant};
        Some(match self {
            Self::Grant => {
                let in_a_minute = chrono::Utc::now() + chrono::Duration::seconds(60);
                let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
                TransferAnswer::Granted(TransferGrant {
                    dial_target: seat.dial_target,
                    token: Some(seat.token),
                    expires_at: in_a_minute.with_timezone(&beijing).with_nanosecond(0),
                    partner_ref: seat.partner_ref,
                })
            }
            Self::Refuse(reason) => {
                TransferAnswer::refused(*reason, format!("模拟拒绝 simulated: {reason}"))
            }
            Self::Silent(d) => {
                tokio::time::sleep(*d).await;
                TransferAnswer::refused(RefusalReason::Busy, "answered too late")
            }
            Self::Error => return None,
        })
    }
}
