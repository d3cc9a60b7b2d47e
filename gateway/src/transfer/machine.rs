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
    use super::CallEvent as E;
    use super::TransferState as S;
    use super::*;

    fn moved(to: S) -> Step {
        Step::Move(to)
    }

    #[test]
    fn the_path_that_succeeds() {
        assert_eq!(step(S::Granted, E::Ringing, false), moved(S::Ringing));
        assert_eq!(step(S::Ringing, E::Connected, false), moved(S::Connected));
        assert_eq!(
            step(S::Connected, E::OriginatorLeft, false),
            moved(S::Connected)
        );
        assert_eq!(step(S::Connected, E::Completed, true), moved(S::Completed));
    }

    #[test]
    fn connected_before_ringing_is_accepted_and_the_late_ringing_changes_nothing() {
        assert_eq!(step(S::Granted, E::Connected, false), moved(S::Connected));
        assert_eq!(step(S::Connected, E::Ringing, false), Step::Late);
        assert_eq!(step(S::Completed, E::Connected, true), Step::Late);
        assert_eq!(step(S::Connected, E::OriginatorLeft, true), Step::Late);
        assert_eq!(step(S::Granted, E::Completed, false), moved(S::Completed));
    }

    #[test]
    fn completed_after_failed_is_rejected() {
        let rejected = |s, e| matches!(step(s, e, false), Step::Reject(_));
        assert!(rejected(S::Failed, E::Completed));
        assert!(rejected(S::Completed, E::Failed));
        assert!(rejected(S::Expired, E::Connected));
        assert!(rejected(S::Refused, E::Ringing));
        assert!(rejected(S::Requested, E::Ringing));
    }

    #[test]
    fn a_failure_ends_any_live_transfer() {
        for s in [S::Granted, S::Ringing, S::Connected] {
            assert_eq!(step(s, E::Failed, false), moved(S::Failed));
        }
    }

    #[test]
    fn which_states_end_and_which_file_a_ticket() {
        let ended: Vec<_> = S::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(ended, [S::Refused, S::Completed, S::Failed, S::Expired]);
        let fallback: Vec<_> = S::ALL.into_iter().filter(|s| s.needs_fallback()).collect();
        assert_eq!(fallback, [S::Refused, S::Failed, S::Expired]);
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
    }
}
