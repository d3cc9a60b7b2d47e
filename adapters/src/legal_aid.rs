//! The legal-aid case system (法律援助办案系统), partner `legal-aid`: HTTPS JSON both ways, every
//! request signed with SM2 (GB/T 32918) over app id + timestamp + nonce + body.
//!
//! - We file applications: `POST <url>/applications` → `201 {"caseNo": "..."}` (`200` with the
//!   same number when the application id was filed before); `422 {"errors": [{"field",
//!   "reason"}]}` when the case system refuses it.
//! - It reports each case's status, numbered per case from 1 without gaps:
//!   `POST /partners/legal-aid/cases/updates` (see [`WireCaseUpdate`]).
//! - For repairs and reconciliation we read `GET <url>/cases?status=open` →
//!   `{"cases": [{"caseNo", "version", "status"}]}` and `GET <url>/cases/<caseNo>/updates?after=N`
//!   → `{"updates": [...]}`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use hotline_model::legal_aid::{
    Applicant, Application, Attachment, CaseStatus, CaseUpdate, Hardship, Sex,
};
use hotline_model::{EventBody, EventKind};
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::{HttpTransport, body_snippet, classify_status};
use crate::signature::{Scheme, SignatureSpec, Signer};
use crate::{
    Adapter, EncodeError, Inbound, InboundRequest, IngressError, IngressReply, OutboundMessage,
    Outcome, TransportError, WireRequest, WireResponse,
};

pub const PARTNER: &str = "legal-aid";

/// The signature headers the case system uses.
pub fn signature_spec() -> SignatureSpec {
    SignatureSpec {
        scheme: Scheme::Sm2,
        app_id_header: "x-la-appid".into(),
        timestamp_header: "x-la-timestamp".into(),
        nonce_header: "x-la-nonce".into(),
        signature_header: "x-la-signature".into(),
        token_header: "x-token".into(),
    }
}

/// The SM2 public key (hex, SEC1 uncompressed) of a private key (hex): what the other side
/// configures to check our signatures.
pub fn public_key_hex(private_hex: &str) -> Result<String, String> {
    let bytes = hex::decode(private_hex.trim()).map_err(|_| "the private key is not hex")?;
    let key = sm2::dsa::SigningKey::from_slice(crate::signature::SM2_ID, &bytes)
        .map_err(|_| "not an SM2 private key")?;
    Ok(hex::encode(key.verifying_key().to_sec1_bytes()))
}

/// A fresh SM2 private key (hex) from 32 random bytes.
pub fn new_private_key(random: [u8; 32]) -> Result<String, String> {
    let hex = hex::encode(random);
    public_key_hex(&hex).map(|_| hex)
}

#[derive(Debug, Clone)]
pub struct LegalAidSettings {
    /// The case system's API base, e.g. `https://fy.sft.example.gov.cn/api`.
    pub url: String,
    pub app_id: String,
    /// Our SM2 private key (hex): signs what we send.
    pub private_key: String,
    /// The case system's SM2 public key (hex, SEC1): checks what it sends.
    pub public_key: String,
    pub timeout: Duration,
    /// Client certificate and trust roots for the case system's HTTPS endpoint.
    pub tls: Option<crate::http::OutboundTls>,
}

// --- The wire format ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireApplication {
    /// Ours; the case system files an application id once.
    pub application_id: String,
    /// Our ticket id, echoed in every update of the case.
    pub gateway_ref: Uuid,
    /// The system the matter came from (`12348`, `12345`, ...) and its number there.
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_no: Option<String>,
    pub applicant: WireApplicant,
    pub opposing_party: String,
    pub case_type: String,
    pub unpaid_wages: bool,
    pub description: String,
    #[serde(default)]
    pub attachments: Vec<WireAttachment>,
    /// `PLEDGE` (诚信承诺) or `STATEMENT` (with `hardshipText`).
    pub hardship_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship_text: Option<String>,
    pub urgent: bool,
    pub submitted_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireApplicant {
    pub name: String,
    /// `1` male, `2` female (GB/T 2261.1).
    pub sex: String,
    pub id_card: String,
    pub mobile: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireAttachment {
    pub name: String,
    pub url: String,
}

/// A case update as the case system sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireCaseUpdate {
    pub case_no: String,
    pub version: u64,
    pub gateway_ref: Uuid,
    pub received_at: DateTime<FixedOffset>,
    pub at: DateTime<FixedOffset>,
    /// ACCEPTED 受理, REVIEWING 审查, MATERIALS 补充材料, GRANTED 给予, REFUSED 不予,
    /// ASSIGNED 指派, HANDLING 承办, CLOSED 结案, TERMINATED 终止.
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub materials: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lawyer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground: Option<String>,
}

/// One case in the case system's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseSummary {
    pub case_no: String,
    pub version: u64,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaseList {
    cases: Vec<CaseSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateList {
    updates: Vec<WireCaseUpdate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filed {
    case_no: String,
}

impl WireApplication {
    pub fn new(
        application_id: String,
        ticket: &hotline_model::Ticket,
        a: &Application,
        submitted_at: DateTime<FixedOffset>,
    ) -> Self {
        let (hardship_type, hardship_text) = match &a.hardship {
            Hardship::Pledge => ("PLEDGE".to_owned(), None),
            Hardship::Statement { text } => ("STATEMENT".to_owned(), Some(text.clone())),
        };
        Self {
            application_id,
            gateway_ref: ticket.id,
            origin: ticket.origin.clone(),
            origin_no: ticket.external_id.clone(),
            applicant: WireApplicant {
                name: a.applicant.name.clone(),
                sex: match a.applicant.sex {
                    Sex::Male => "1",
                    Sex::Female => "2",
                }
                .into(),
                id_card: a.applicant.id_number.clone(),
                mobile: a.applicant.phone.clone(),
                address: a.applicant.address.clone(),
            },
            opposing_party: a.opposing_party.clone(),
            case_type: a.case_type.clone(),
            unpaid_wages: a.unpaid_wages,
            description: a.description.clone(),
            attachments: a
                .attachments
                .iter()
                .map(|t| WireAttachment {
                    name: t.name.clone(),
                    url: t.url.clone(),
                })
                .collect(),
            hardship_type,
            hardship_text,
            urgent: a.urgent,
            submitted_at,
        }
    }

    /// The application as filed, in canonical terms (the simulator's side).
    pub fn application(&self) -> Result<Application, String> {
        let sex = match self.applicant.sex.as_str() {
            "1" => Sex::Male,
            "2" => Sex::Female,
            other => return Err(format!("applicant.sex: unknown code `{other}`")),
        };
        let hardship = match self.hardship_type.as_str() {
            "PLEDGE" => Hardship::Pledge,
            "STATEMENT" => Hardship::Statement {
                text: self.hardship_text.clone().unwrap_or_default(),
            },
            other => return Err(format!("hardshipType: unknown code `{other}`")),
        };
        Ok(Application {
            applicant: Applicant {
                name: self.applicant.name.clone(),
                sex,
                id_number: self.applicant.id_card.clone(),
                phone: self.applicant.mobile.clone(),
                address: self.applicant.address.clone(),
            },
            opposing_party: self.opposing_party.clone(),
            case_type: self.case_type.clone(),
            unpaid_wages: self.unpaid_wages,
            description: self.description.clone(),
            attachments: self
                .attachments
                .iter()
                .map(|t| Attachment {
                    name: t.name.clone(),
                    url: t.url.clone(),
                })
                .collect(),
            hardship,
            urgent: self.urgent,
        })
    }
}

impl WireCaseUpdate {
    pub fn from_update(u: &CaseUpdate) -> Self {
        let mut w = Self {
            case_no: u.case_no.clone(),
            version: u.version,
            gateway_ref: u.ticket_id,
            received_at: u.received_at,
            at: u.at,
            status: String::new(),
            materials: Vec::new(),
            reasons: None,
            lawyer: None,
            firm: None,
            ground: None,
        };
        w.status = match &u.status {
            CaseStatus::Submitted => "SUBMITTED",
            CaseStatus::Accepted => "ACCEPTED",
            CaseStatus::Reviewing => "REVIEWING",
            CaseStatus::MaterialsRequested { materials } => {
                w.materials = materials.clone();
                "MATERIALS"
            }
            CaseStatus::Granted => "GRANTED",
            CaseStatus::Refused { reasons } => {
                w.reasons = Some(reasons.clone());
                "REFUSED"
            }
            CaseStatus::Assigned { lawyer, firm } => {
                w.lawyer = Some(lawyer.clone());
                w.firm = Some(firm.clone());
                "ASSIGNED"
            }
            CaseStatus::Handling => "HANDLING",
            CaseStatus::Closed => "CLOSED",
            CaseStatus::Terminated { ground } => {
                w.ground = Some(ground.clone());
                "TERMINATED"
            }
        }
        .into();
        w
    }

    /// The update in canonical terms; a missing detail is named.
    pub fn update(&self) -> Result<CaseUpdate, IngressError> {
        let need = |v: &Option<String>, field: &str| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                IngressError::invalid(field, format!("is required with status {}", self.status))
            })
        };
        let status = match self.status.as_str() {
            "ACCEPTED" => CaseStatus::Accepted,
            "REVIEWING" => CaseStatus::Reviewing,
            "MATERIALS" if self.materials.is_empty() => {
                return Err(IngressError::invalid(
                    "materials",
                    "must list the missing materials with status MATERIALS",
                ));
            }
            "MATERIALS" => CaseStatus::MaterialsRequested {
                materials: self.materials.clone(),
            },
            "GRANTED" => CaseStatus::Granted,
            "REFUSED" => CaseStatus::Refused {
                reasons: need(&self.reasons, "reasons")?,
            },
            "ASSIGNED" => CaseStatus::Assigned {
                lawyer: need(&self.lawyer, "lawyer")?,
                firm: need(&self.firm, "firm")?,
            },
            "HANDLING" => CaseStatus::Handling,
            "CLOSED" => CaseStatus::Closed,
            "TERMINATED" => CaseStatus::Terminated {
                ground: need(&self.ground, "ground")?,
            },
            other => {
                return Err(IngressError::invalid(
                    "status",
                    format!("unknown status `{other}`"),
                ));
            }
        };
        if self.case_no.trim().is_empty() || self.case_no.len() > 64 {
            return Err(IngressError::invalid("caseNo", "must be 1-64 characters"));
        }
        if self.version == 0 {
            return Err(IngressError::invalid("version", "starts at 1"));
        }
        Ok(CaseUpdate {
            case_no: self.case_no.clone(),
            version: self.version,
            ticket_id: self.gateway_ref,
            received_at: self.received_at,
            at: self.at,
            status,
        })
    }
}

// --- The client ---------------------------------------------------------------------------

/// Signed HTTP calls to the case system: filing, listing and reading updates.
pub struct LegalAidClient {
    url: String,
    signer: Signer,
    transport: HttpTransport,
}

impl LegalAidClient {
    pub fn new(s: &LegalAidSettings) -> Result<Self, TransportError> {
        Ok(Self {
            url: s.url.trim_end_matches('/').to_owned(),
            signer: Signer {
                spec: signature_spec(),
                app_id: s.app_id.clone(),
                our_secret: s.private_key.clone(),
                their_secret: s.public_key.clone(),
            },
            transport: HttpTransport::new(s.timeout, s.tls.clone())?,
        })
    }

    fn signed(&self, method: Method, url: String, body: Vec<u8>) -> Result<WireRequest, String> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        self.signer.sign(&mut headers, &body).map_err(|e| e.0)?;
        Ok(WireRequest {
            method,
            url,
            headers,
            body: body.into(),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, TransportError> {
        let req = self
            .signed(Method::GET, url, Vec::new())
            .map_err(TransportError::Request)?;
        let resp = self.transport.send(req).await?;
        if !resp.status.is_success() {
            return Err(TransportError::Other(format!(
                "HTTP {}: {}",
                resp.status,
                body_snippet(&resp.body)
            )));
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| TransportError::Other(format!("malformed answer: {e}")))
    }

    /// The case system's open cases.
    pub async fn open_cases(&self) -> Result<Vec<CaseSummary>, TransportError> {
        let list: CaseList = self.get(format!("{}/cases?status=open", self.url)).await?;
        Ok(list.cases)
    }

    /// A case's updates after `version`, in order; a malformed one is an error.
    pub async fn updates(
        &self,
        case_no: &str,
        after: u64,
    ) -> Result<Vec<CaseUpdate>, TransportError> {
        let mut url = reqwest::Url::parse(&format!("{}/cases/", self.url))
            .map_err(|e| TransportError::Request(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| TransportError::Request("the case system URL cannot have a path".into()))?
            .pop_if_empty()
            .push(case_no)
            .push("updates");
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let list: UpdateList = self.get(url.to_string()).await?;
        list.updates
            .iter()
            .map(|u| {
                u.update()
                    .map_err(|e| TransportError::Other(format!("case {case_no}: {e}")))
            })
            .collect()
    }
}

// --- The adapter --------------------------------------------------------------------------

pub struct LegalAidAdapter {
    client: std::sync::Arc<LegalAidClient>,
}

impl LegalAidAdapter {
    pub fn with_client(client: std::sync::Arc<LegalAidClient>) -> Self {
        Self { client }
    }

    fn answer(status: StatusCode, body: serde_json::Value) -> WireResponse {
        WireResponse::new(status, "application/json; charset=UTF-8", body.to_string())
    }
}

#[async_trait]
impl Adapter for LegalAidAdapter {
    fn reload_tls(&self) -> Result<bool, TransportError> {
        self.client.transport.reload()
    }

    fn partner(&self) -> &str {
        PARTNER
    }

    fn supports(&self, kind: EventKind) -> bool {
        kind == EventKind::LegalAid
    }

    fn encode(&self, msg: &OutboundMessage) -> Result<WireRequest, EncodeError> {
        let EventBody::LegalAid { application } = &msg.event.body else {
            return Err(EncodeError::Unsupported(msg.event.kind()));
        };
        let beijing = FixedOffset::east_opt(8 * 3600).expect("valid offset");
        let wire = WireApplication::new(
            msg.message_id.to_string(),
            &msg.ticket,
            application,
            msg.event.at.with_timezone(&beijing),
        );
        let body = serde_json::to_vec(&wire).map_err(|e| EncodeError::Field {
            field: "application".into(),
            reason: e.to_string(),
        })?;
        self.client
            .signed(
                Method::POST,
                format!("{}/applications", self.client.url),
                body,
            )
            .map_err(EncodeError::Signing)
    }

    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        self.client.transport.send(req).await
    }

    fn classify(&self, resp: &WireResponse) -> Outcome {
        if let Some(failure) = classify_status(resp) {
            return failure;
        }
        match serde_json::from_slice::<Filed>(&resp.body) {
            Ok(f) if !f.case_no.is_empty() => Outcome::Acknowledged {
                partner_ref: Some(f.case_no),
            },
            _ => Outcome::Retryable {
                reason: format!("answer without a caseNo: {}", body_snippet(&resp.body)),
                retry_after: None,
            },
        }
    }

    fn decode(&self, req: &InboundRequest) -> Result<Inbound, IngressError> {
        if req.method != Method::POST || req.path != "cases/updates" {
            return Err(IngressError::not_found(format!(
                "no such endpoint: {} {}; case updates are POSTed to `cases/updates`",
                req.method, req.path
            )));
        }
        self.client
            .signer
            .verify(&req.headers, &req.body)
            .map_err(|e| IngressError::unauthorized(e.0))?;
        let wire: WireCaseUpdate = crate::json::from_slice(&req.body)?;
        Ok(Inbound::CaseUpdate(Box::new(wire.update()?)))
    }

    fn respond(&self, reply: &IngressReply) -> WireResponse {
        let body = match reply {
            IngressReply::CaseUpdate { applied, missing } => serde_json::json!({
                "code": "0",
                "applied": applied,
                "missingVersions": missing,
            }),
            IngressReply::TicketAccepted { ticket_id, .. }
            | IngressReply::EventRecorded { ticket_id, .. } => {
                serde_json::json!({"code": "0", "gatewayRef": ticket_id})
            }
            IngressReply::AckApplied { .. } | IngressReply::Transfer { .. } => {
                serde_json::json!({"code": "0"})
            }
        };
        Self::answer(StatusCode::OK, body)
    }

    fn reject(&self, err: &IngressError) -> WireResponse {
        Self::answer(
            err.status,
            serde_json::json!({
                "code": err.code,
                "field": err.field,
                "reason": err.reason,
            }),
        )
    }

    fn replay_guard(&self, req: &InboundRequest) -> Option<(String, Duration)> {
        self.client.signer.nonce(&req.headers).map(|n| {
            (
                n.to_owned(),
                crate::signature::WINDOW * 2 + Duration::from_secs(60),
            )
        })
    }
}
