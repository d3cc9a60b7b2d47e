//! Builds each configured partner: its adapter, retry policy and concurrency.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use hotline_adapters::Adapter;
use hotline_adapters::bus::BusSettings;
use hotline_adapters::legal_aid::{self, LegalAidAdapter, LegalAidClient, LegalAidSettings};
use hotline_adapters::mapped::{MappedAdapter, MappedSettings};
use hotline_adapters::webhook::{WebhookAdapter, WebhookSettings};

use crate::config::{AdapterKind, Config, PartnerConfig};
use crate::delivery::{Partner, RetryPolicy};

/// Deliveries a worker keeps claimed ahead per slot of its partner's concurrency.
const LOOKAHEAD_PER_SLOT: u32 = 4;

/// Every configured partner; `case_system` is the legal-aid case system's client, when
/// configured ([`legal_aid_client`]).
pub fn build(
    config: &Config,
    case_system: Option<Arc<LegalAidClient>>,
) -> anyhow::Result<BTreeMap<String, Arc<Partner>>> {
    config
        .partners
        .iter()
        .map(|(id, p)| {
            let adapter = adapter(config, id, p, case_system.clone())
                .with_context(|| format!("partner {id}"))?;
            let partner = Partner::new(
                adapter,
                RetryPolicy::new(p.retry.clone()),
                p.concurrency,
                p.breaker.clone(),
            );
            let partner = match p.inbound_rate {
                Some(rate) => partner.with_inbound_limit(rate, p.inbound_burst.unwrap_or(rate)),
                None => partner,
            };
            // A paced partner takes deliveries at its own rate: nothing to gain by claiming
            // ahead. Otherwise up to four times as many as may be in flight wait claimed (enough
            // to keep the slots busy while the next claim commits; the relay bench's e2e p99
            // went from 1.7 s with one times to ~50 ms), each sendable while its lease still
            // covers a whole request (the timeout is below the lease).
            let mut partner = match p.outbound_rate {
                Some(rate) => partner.with_outbound_pace(rate),
                None => partner.with_lookahead(
                    p.concurrency.saturating_mul(LOOKAHEAD_PER_SLOT),
                    config.delivery.lease.saturating_sub(p.timeout),
                ),
            };
            partner.tls_identity = p.tls_identity.clone();
            partner.breaker = partner.breaker.probe_within(config.delivery.lease);
            Ok((id.clone(), Arc::new(partner)))
        })
        .collect()
}

/// The legal-aid case system's client, when partner `legal-aid` is configured.
pub fn legal_aid_client(config: &Config) -> anyhow::Result<Option<Arc<LegalAidClient>>> {
    let Some(p) = config
        .partners
        .get(legal_aid::PARTNER)
        .filter(|p| p.adapter == AdapterKind::LegalAid)
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(LegalAidClient::new(&LegalAidSettings {
        url: p.url.clone(),
        app_id: p.app_id.clone(),
        private_key: p.signing_secret.clone(),
        public_key: p.verify_secret.clone(),
        timeout: p.timeout,
        tls: p.outbound_tls.clone(),
    })?)))
}

fn adapter(
    config: &Config,
    id: &str,
    p: &PartnerConfig,
    case_system: Option<Arc<LegalAidClient>>,
) -> anyhow::Result<Arc<dyn Adapter>> {
    Ok(match p.adapter {
        AdapterKind::Webhook => Arc::new(WebhookAdapter::new(WebhookSettings {
            partner: id.to_owned(),
            url: p.url.clone(),
            signing_secret: p.signing_secret.clone(),
            verify_secret: p.verify_secret.clone(),
            timeout: p.timeout,
            ack_timeout: p.ack_timeout,
            tls: p.outbound_tls.clone(),
        })?),
        AdapterKind::LegalAid => match case_system {
            Some(client) => Arc::new(LegalAidAdapter::with_client(client)),
            None => anyhow::bail!("the legal-aid case system is partner `legal-aid`"),
        },
        AdapterKind::Mapped => Arc::new(MappedAdapter::load(MappedSettings {
            partner: id.to_owned(),
            dir: config.mapping_folder(id, p),
            url: p.url.clone(),
            app_id: p.app_id.clone(),
            signing_secret: p.signing_secret.clone(),
            verify_secret: p.verify_secret.clone(),
            timeout: p.timeout,
            ack_timeout: p.ack_timeout,
            poll_url: p.poll_url.clone(),
            poll_ack_url: p.poll_ack_url.clone(),
            transfer_url: p.transfer_url.clone(),
            bus: p.bus.as_ref().map(|b| BusSettings {
                partner: id.to_owned(),
                url: b.url.clone(),
                outbound_exchange: b.outbound_exchange.clone(),
                inbound_exchange: b.inbound_exchange.clone(),
                queue: b.queue.clone(),
                prefetch: b.prefetch,
                timeout: p.timeout,
                tls: p.outbound_tls.clone(),
            }),
            tls: p.outbound_tls.clone(),
        })?),
    })
}
