//! The 12348 call centre's own CTI, as the gateway calls it: it is asked whether it takes a
//! partner's caller (inbound transfers), and it is told how transfers ended.
//!
//! Canonical JSON: `POST <url>/transfers` with `{transfer_id, partner, offer}` answers a
//! [`TransferAnswer`]; `POST <url>/transfer-events` takes a [`Notice`] and answers any 2xx.

use std::time::Duration;

use hotline_model::{RefusalReason, TransferAnswer, TransferOffer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::machine::TransferState;
use super::record::{Direction, Transfer};

/// What the home CTI is told when a transfer ends without the caller reaching the other side,
/// so the agent can tell the caller what happens next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    pub transfer_id: Uuid,
    pub call_id: String,
    pub partner: String,
    pub direction: Direction,
    pub state: TransferState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The ticket filed instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_ticket_id: Option<Uuid>,
    /// What to tell the caller, in Chinese.
    pub message: String,
}

impl Notice {
    pub fn of(t: &Transfer) -> Self {
        let why = t.why_zh();
        let message = match t.fallback_ticket_id {
            Some(_) => format!("{why}，已转为工单办理，将在规定时限内答复来电人"),
            None => why.to_owned(),
        };
        Self {
            transfer_id: t.id,
            call_id: t.call_id.clone(),
            partner: t.partner.clone(),
            direction: t.direction,
            state: t.state,
            reason: t.reason,
            detail: t.detail.clone(),
            fallback_ticket_id: t.fallback_ticket_id,
            message,
        }
    }
}

#[derive(Debug, Serialize)]
struct Ask<'a> {
    transfer_id: Uuid,
    partner: &'a str,
    offer: &'a TransferOffer,
}

pub struct HomeCti {
    url: Option<String>,
    token: Option<String>,
    client: reqwest::Client,
    timeout: Duration,
}

impl HomeCti {
    pub fn new(url: Option<String>, token: Option<String>, timeout: Duration) -> Self {
        Self {
            url: url.map(|u| u.trim_end_matches('/').to_owned()),
            token: token.filter(|t| !t.is_empty()),
            client: reqwest::Client::new(),
            timeout,
        }
    }

    fn post(&self, path: &str) -> Option<reqwest::RequestBuilder> {
        let url = self.url.as_ref()?;
        let mut req = self
            .client
            .post(format!("{url}/{path}"))
            .timeout(self.timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        Some(req)
    }

    /// Asks whether the home call centre takes a partner's caller.
    pub async fn ask(
        &self,
        transfer_id: Uuid,
        partner: &str,
        offer: &TransferOffer,
    ) -> TransferAnswer {
        let Some(req) = self.post("transfers") else {
            return TransferAnswer::refused(
                RefusalReason::NoAgent,
                "12348 takes no transfers: no home CTI is configured (transfers.home_cti_url)",
            );
        };
        let resp = match req
            .json(&Ask {
                transfer_id,
                partner,
                offer,
            })
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return TransferAnswer::refused(
                    RefusalReason::Unreachable,
                    format!("home CTI: {}", without_url(e)),
                );
            }
        };
        let status = resp.status();
        match resp.bytes().await {
            Ok(body) if status.is_success() => serde_json::from_slice(&body).unwrap_or_else(|e| {
                TransferAnswer::refused(
                    RefusalReason::PartnerError,
                    format!("home CTI answered something that is not a transfer answer: {e}"),
                )
            }),
            Ok(_) => TransferAnswer::refused(
                RefusalReason::Unreachable,
                format!("home CTI answered HTTP {status}"),
            ),
            Err(e) => TransferAnswer::refused(RefusalReason::Unreachable, format!("home CTI: {e}")),
        }
    }

    /// Tells the home CTI how a transfer ended. `Ok(false)` when no home CTI is configured.
    pub async fn notify(&self, notice: &Notice) -> Result<bool, String> {
        let Some(req) = self.post("transfer-events") else {
            return Ok(false);
        };
        let resp = req
            .json(notice)
            .send()
            .await
            .map_err(|e| format!("home CTI: {}", without_url(e)))?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            Err(format!("home CTI answered HTTP {}", resp.status()))
        }
    }
}

fn without_url(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else {
        e.without_url().to_string()
    }
}
