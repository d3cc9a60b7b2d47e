//! The transfer state machine: requested → granted/refused → ringing → connected → completed,
//! or failed/expired. Pure: the service persists what it decides.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Asked; the other side has not answered yet.
    Requested,
    /// The other side will take the call: dial the granted target.
    Granted,
    /// The other side will not take the call (busy, closed, no agent, unreachable, error).
    Refused,
    /// The other side's phone is ringing.
    Ringing,
    /// The three-way call is established.
    Connected,
    /// The call ended after the hand-over.
    Completed,
    /// The call could not be made or dropped.
    Failed,
    /// Granted, but no connection within the configured time.
    Expired,
}

impl TransferState {
    pub const ALL: [TransferState; 8] = [
        Self::Requested,
        Self::Granted,
        Self::Refused,
        Self::Ringing,
        Self::Connected,
        Self::Completed,
        Self::Failed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Ringing => "ringing",
            Self::Connected => "connected",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Refused | Self::Completed | Self::Failed | Self::Expired
        )
    }

    /// Ended without the caller reaching the other side: a ticket is filed instead.
    pub fn needs_fallback(self) -> bool {
        matches!(self, Self::Refused | Self::Failed | Self::Expired)
    }

    /// Progress along the path that succeeds; `None` off it.
    fn rank(self) -> Option<u8> {
        match self {
            Self::Granted => Some(1),
            Self::Ringing => Some(2),
            Self::Connected => Some(3),
            Self::Completed => Some(4),
            _ => None,
        }
    }
}

impl std::fmt::Display for TransferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TransferState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a transfer state"))
    }
}

/// What a CTI reports about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallEvent {
    /// 振铃: the other side's phone rings.
    Ringing,
    /// 三方接通: agent, caller and the other side are on the call.
    Connected,
    /// 发起方退出: our agent dropped off, leaving the caller with the other side.
    OriginatorLeft,
    /// 通话结束.
    Completed,
    /// 转接失败: no answer, dropped, rejected at the switch.
    Failed,
}

impl CallEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Connected => "connected",
            Self::OriginatorLeft => "originator_left",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The state the event moves a transfer to on the path that succeeds.
    fn target(self) -> TransferState {
        match self {
            Self::Ringing => TransferState::Ringing,
            Self::Connected | Self::OriginatorLeft => TransferState::Connected,
            Self::Completed => TransferState::Completed,
            Self::Failed => TransferState::Failed,
        }
    }
}

/// What to do with a reported event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Move to this state.
    Move(TransferState),
    /// Consistent but behind: the transfer is already further (ringing after connected).
    /// Recorded, nothing changes.
    Late,
    /// Impossible now (completed after failed, anything before the grant). Recorded and refused.
    Reject(String),
}

/// Decides what `event` does to a transfer in `state`. `originator_left` says whether our
/// agent's leaving was already recorded.
pub fn step(state: TransferState, event: CallEvent, originator_left: bool) -> Step {
    if state == TransferState::Requested {
        return Step::Reject("the transfer has not been granted yet".into());
    }
    if state.is_terminal() && state != TransferState::Completed {
        return Step::Reject(format!("the transfer has already ended as {state}"));
    }
    if event == CallEvent::Failed {
        return if state == TransferState::Completed {
            Step::Reject("the transfer has already completed".into())
        } else {
            Step::Move(TransferState::Failed)
        };
    }
    let (Some(now), Some(to)) = (state.rank(), event.target().rank()) else {
        return Step::Reject(format!(
            "`{}` does not apply to a {state} transfer",
            event.as_str()
        ));
    };
    if event == CallEvent::OriginatorLeft && state == TransferState::Connected && !originator_left {
        // Stays connected; the service records when the agent left.
        return Step::Move(TransferState::Connected);
    }
    if to > now {
        Step::Move(event.target())
    } else {
        Step::Late
    }
}

#[cfg(test)]
mod tests {
    use super::CallEvent::*;
    use super::TransferState::*;
    use super::*;

    #[test]
    fn the_path_that_succeeds() {
        assert_eq!(
            step(Granted, Ringing, false),
            Step::Move(TransferState::Ringing)
        );
        assert_eq!(
            step(TransferState::Ringing, Connected, false),
            Step::Move(TransferState::Connected)
        );
        assert_eq!(
            step(TransferState::Connected, OriginatorLeft, false),
            Step::Move(TransferState::Connected)
        );
        assert_eq!(
            step(TransferState::Connected, Completed, true),
            Step::Move(TransferState::Completed)
        );
    }

    #[test]
    fn connected_before_ringing_is_accepted_and_the_late_ringing_changes_nothing() {
        assert_eq!(
            step(Granted, Connected, false),
            Step::Move(TransferState::Connected)
        );
        assert_eq!(step(TransferState::Connected, Ringing, false), Step::Late);
        assert_eq!(step(TransferState::Completed, Connected, true), Step::Late);
        assert_eq!(
            step(TransferState::Connected, OriginatorLeft, true),
            Step::Late
        );
    }

    #[test]
    fn completed_after_failed_is_rejected() {
        assert!(matches!(
            step(TransferState::Failed, Completed, false),
            Step::Reject(_)
        ));
        assert!(matches!(
            step(TransferState::Completed, Failed, false),
            Step::Reject(_)
        ));
        assert!(matches!(step(Expired, Connected, false), Step::Reject(_)));
        assert!(matches!(step(Refused, Ringing, false), Step::Reject(_)));
        assert!(matches!(step(Requested, Ringing, false), Step::Reject(_)));
    }

    #[test]
    fn a_failure_ends_any_live_transfer() {
        for s in [Granted, TransferState::Ringing, TransferState::Connected] {
            assert_eq!(step(s, Failed, false), Step::Move(TransferState::Failed));
        }
    }

    #[test]
    fn which_states_end_and_which_file_a_ticket() {
        let ended: Vec<_> = TransferState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            ended,
            [
                Refused,
                TransferState::Completed,
                TransferState::Failed,
                Expired
            ]
        );
        assert!(!TransferState::Completed.needs_fallback());
        assert!(Expired.needs_fallback());
        for s in TransferState::ALL {
            assert_eq!(s.as_str().parse::<TransferState>(), Ok(s));
        }
    }
}
