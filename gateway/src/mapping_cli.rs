//! `hotline-gateway mapping test`: translate one message by hand with a partner's mapping.

use std::path::Path;

use anyhow::{Context, bail};
use hotline_adapters::mapped::load_folder;
use hotline_adapters::{Inbound, TicketRef};

/// Decodes (partner wire → canonical) or encodes (canonical → partner wire) the message in
/// `file` with the mapping in `dir`; returns what to print.
pub fn test(dir: &Path, message: &str, decode: bool, file: &Path) -> anyhow::Result<String> {
    let (mapping, _) = load_folder(dir).map_err(|p| anyhow::anyhow!("{p}"))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = String::new();
    if decode {
        let t = mapping.decode(&bytes).with_context(|| {
            format!(
                "decoding with {} mapping {}",
                mapping.partner, mapping.version
            )
        })?;
        if t.message_type != message {
            bail!(
                "the file is a `{}` message, not `{message}`",
                t.message_type
            );
        }
        out.push_str(&serde_json::to_string_pretty(&t.doc)?);
        for w in &t.warnings {
            out.push_str(&format!("\n警告 warning: {w}"));
        }
        if t.message_type == "transfer_answer" {
            let (id, answer) = mapping.into_answer(t)?;
            let what = match answer {
                hotline_model::TransferAnswer::Granted(g) => {
                    format!("granted, dial {}", g.dial_target)
                }
                hotline_model::TransferAnswer::Refused { reason, .. } => {
                    format!("refused ({reason})")
                }
            };
            out.push_str(&format!(
                "\n正确 OK: a valid answer to transfer {id}: {what}"
            ));
            return Ok(out);
        }
        let summary = match mapping.into_inbound(t)? {
            Inbound::Ticket {
                partner_number,
                draft,
                ..
            } => format!(
                "a valid ticket ({:?}, {:?}) known to {} as {partner_number}",
                draft.kind, draft.urgency, mapping.partner
            ),
            Inbound::Event { ticket, body, .. } => {
                let which = match ticket {
                    TicketRef::Gateway(id) => format!("gateway ticket {id}"),
                    TicketRef::Partner(n) => format!("{}'s ticket {n}", mapping.partner),
                };
                format!("a valid `{}` event about {which}", body.kind())
            }
            Inbound::Ack {
                message_id,
                accepted,
                ..
            } => {
                format!("an acknowledgement of message {message_id} (accepted: {accepted})")
            }
            Inbound::CaseUpdate(u) => format!(
                "a valid update {} of legal-aid case {}",
                u.version, u.case_no
            ),
            Inbound::Transfer { offer, .. } => format!(
                "a valid transfer offer {} for call {} ({:?})",
                offer.id, offer.call_id, offer.ticket.kind
            ),
        };
        out.push_str(&format!("\n正确 OK: {summary}"));
    } else {
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not canonical JSON", file.display()))?;
        let confidential = doc["ticket"]["confidential"].as_bool().unwrap_or(false);
        let (wire, warnings) = mapping
            .encode(message, &doc, confidential)
            .with_context(|| {
                format!(
                    "encoding with {} mapping {}",
                    mapping.partner, mapping.version
                )
            })?;
        let text = mapping.encoding.decode(&wire).map_err(anyhow::Error::msg)?;
        out.push_str(&text);
        for w in &warnings {
            out.push_str(&format!("\n警告 warning: {w}"));
        }
        out.push_str(&format!(
            "\n正确 OK: {} bytes of {} for partner {}",
            wire.len(),
            mapping.encoding.label(),
            mapping.partner
        ));
    }
    Ok(out)
}
