//! The demo's 12348 法网 and legal-aid case system: 法网 on RabbitMQ when a broker answers
//! (`AMQP_URL`, default the local one), else over HTTP, said clearly; the case system over
//! HTTP with SM2. A story runs on both: online consultations are handed to the hotline and
//! answered, and hotline tickets become legal-aid cases that go through grant and assignment.

use std::time::Duration;

use contract_tests::bus_sim::{BusSim, BusSimOptions};
use contract_tests::legal_aid_sim::{GATEWAY_KEY, LegalAidSim};
use contract_tests::mapped_sim::{MappedSim, MappedSimOptions};
use hotline_model::legal_aid::{Application, CaseStatus};
use serde_json::{Value, json};

use super::{GATEWAY_SECRET, PARTNER_SECRET, api_client, partner};
use crate::config::{AdapterKind, BusConfig, PartnerConfig};

/// How 法网 is reached in this demo.
pub enum Fawang {
    Bus(BusSim),
    Http(MappedSim),
}

pub struct Platforms {
    pub fawang: Fawang,
    pub legal_aid: LegalAidSim,
    /// What the banner says about 法网's transport.
    pub fawang_line: String,
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Starts both simulators; returns them with the partners' configurations.
pub async fn start(
    mappings: &std::path::Path,
) -> anyhow::Result<(Platforms, Vec<(String, PartnerConfig)>)> {
    let legal_aid = LegalAidSim::start(0).await?;
    let mut la = partner(
        AdapterKind::LegalAid,
        legal_aid.url(),
        GATEWAY_KEY.into(),
        LegalAidSim::public_key(),
    );
    la.retry.max_attempts = 20;
    let bus = BusConfig {
        url: amqp_url(),
        outbound_exchange: "demo.fawang.in".into(),
        inbound_exchange: "demo.fawang.out".into(),
        queue: "demo.gateway.from-fawang".into(),
        prefetch: 16,
    };
    let started = tokio::time::timeout(
        Duration::from_secs(3),
        BusSim::start(BusSimOptions {
            dir: &mappings.join("fawang"),
            amqp_url: bus.url.clone(),
            outbound_exchange: bus.outbound_exchange.clone(),
            inbound_exchange: bus.inbound_exchange.clone(),
            name: "demo.fawang-sim".into(),
            app_id: "hotline-12348".into(),
            gateway_secret: GATEWAY_SECRET.into(),
            partner_secret: PARTNER_SECRET.into(),
        }),
    )
    .await;
    let (fawang, mut fw, fawang_line) = match started {
        Ok(Ok(sim)) => {
            let mut p = partner(
                AdapterKind::Mapped,
                String::new(),
                GATEWAY_SECRET.into(),
                PARTNER_SECRET.into(),
            );
            p.bus = Some(bus);
            (
                Fawang::Bus(sim),
                p,
                "RabbitMQ 总线 on the bus (exchanges demo.fawang.in / demo.fawang.out)".to_owned(),
            )
        }
        Ok(Err(_)) | Err(_) => {
            let sim = MappedSim::start(MappedSimOptions {
                dir: &mappings.join("fawang"),
                app_id: "hotline-12348".into(),
                gateway_secret: GATEWAY_SECRET.into(),
                partner_secret: PARTNER_SECRET.into(),
            })
            .await?;
            let url = sim.url();
            (
                Fawang::Http(sim),
                partner(
                    AdapterKind::Mapped,
                    url.clone(),
                    GATEWAY_SECRET.into(),
                    PARTNER_SECRET.into(),
                ),
                format!(
                    "未连接到 RabbitMQ ({})，改用 HTTP 传输 no broker reachable: over HTTP at {url}",
                    amqp_url()
                ),
            )
        }
    };
    fw.ack_timeout = Duration::from_secs(30);
    Ok((
        Platforms {
            fawang,
            legal_aid,
            fawang_line,
        },
        vec![("fawang".into(), fw), ("legal-aid".into(), la)],
    ))
}

impl Platforms {
    pub fn set_gateway(&self, base: &str) {
        self.legal_aid.set_gateway(base);
        if let Fawang::Http(sim) = &self.fawang {
            sim.set_gateway(base);
        }
    }

    /// Every `every`: 法网 hands a consultation to the hotline, which answers it; and a 12345
    /// ticket becomes a legal-aid application whose case goes on to assignment.
    pub async fn run(self, base: String, token: String, every: Duration) {
        let client = api_client(&token);
        let run = chrono::Utc::now().format("%H%M%S").to_string();
        for n in 1u64.. {
            tokio::time::sleep(every).await;
            if let Err(e) = self.consultation(&client, &base, &run, n).await {
                tracing::warn!(error = %e, "demo: 法网 handoff failed");
            }
            if let Err(e) = self.legal_aid_case(&client, &base).await {
                tracing::warn!(error = %e, "demo: legal-aid story failed");
            }
        }
    }

    async fn consultation(
        &self,
        client: &reqwest::Client,
        base: &str,
        run: &str,
        n: u64,
    ) -> anyhow::Result<()> {
        let mut doc: Value = serde_json::from_str(include_str!(
            "../../../mappings/canonical/dispatch.handoff.json"
        ))?;
        doc["message"]["id"] = format!("fw-demo-{run}-{n}").into();
        doc["ticket"]["partner_number"] = format!("FW-{run}-{n:04}").into();
        match &self.fawang {
            Fawang::Bus(sim) => {
                sim.publish("dispatch", &doc).await?;
            }
            Fawang::Http(sim) => {
                sim.send("dispatch", &doc).await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let tickets: Vec<Value> = client
            .get(format!(
                "{base}/api/v1/tickets?origin=fawang&status=dispatched"
            ))
            .send()
            .await?
            .json()
            .await?;
        for t in tickets {
            let Some(id) = t["id"].as_str() else { continue };
            for (action, body) in [
                ("receipt", json!({"unit": "12348热线"})),
                (
                    "reply",
                    json!({"content": "口头辞退不符合法定程序，可主张经济补偿，建议先申请劳动仲裁。", "unit": "12348热线"}),
                ),
            ] {
                client
                    .post(format!("{base}/api/v1/tickets/{id}/actions/{action}"))
                    .json(&body)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    async fn legal_aid_case(&self, client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        let tickets: Vec<Value> = client
            .get(format!("{base}/api/v1/tickets?origin=12345"))
            .send()
            .await?
            .json()
            .await?;
        let Some(ticket) = tickets.last().and_then(|t| t["id"].as_str()) else {
            return Ok(());
        };
        let before = self.legal_aid.cases().len();
        client
            .post(format!("{base}/api/v1/legal-aid/applications"))
            .json(&json!({"ticket_id": ticket, "application": Application::example()}))
            .send()
            .await?;
        let Some(case_no) = contract_tests::wait::wait_until(Duration::from_secs(10), || async {
            let cases = self.legal_aid.cases();
            (cases.len() > before)
                .then(|| cases.last().map(|c| c.case_no.clone()))
                .flatten()
        })
        .await
        else {
            return Ok(());
        };
        for status in [
            CaseStatus::Accepted,
            CaseStatus::Reviewing,
            CaseStatus::Granted,
            CaseStatus::Assigned {
                lawyer: "张伟".into(),
                firm: "山东泉城律师事务所".into(),
            },
        ] {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.legal_aid.advance(&case_no, status).await?;
        }
        Ok(())
    }
}
