//! The demo's three-way calls: one of each kind in turn, for ever, acting as the 12348 CTI.
//!
//! - to 12333: granted, rings, connects, our agent leaves, completed;
//! - to 12345: refused (busy) → a ticket to 12345;
//! - to 12315: granted but never connected → expires → a ticket, and the home CTI is told;
//! - to 12338: outside its business hours → a ticket without a call;
//! - from 12345: offered to 12348, granted by the home CTI, connected and completed.

use std::time::Duration;

use contract_tests::mapped_sim::MappedSim;
use contract_tests::samples::random_draft;
use serde_json::{Value, json};

/// Which kind of transfer each round makes.
const ROUNDS: [&str; 5] = ["12333", "12345", "12315", "12338", "from-12345"];

pub async fn run(base: String, token: String, sims: Vec<MappedSim>, every: Duration) {
    let client = super::api_client(&token);
    let run = chrono::Utc::now().format("%H%M%S").to_string();
    let mut tick = tokio::time::interval(every);
    for n in 0u64.. {
        tick.tick().await;
        let kind = ROUNDS[n as usize % ROUNDS.len()];
        let call_id = format!("DEMO-{run}-{n:04}");
        if kind == "from-12345" {
            if let Some(sim) = sims.iter().find(|s| s.partner() == "12345") {
                inbound(&client, &base, sim, &call_id).await;
            }
            continue;
        }
        let body = json!({
            "call_id": call_id,
            "target": kind,
            "agent_id": format!("A{:04}", n % 40),
            "ticket": random_draft(),
        });
        let answer = match post(&client, &format!("{base}/api/v1/transfers"), &body).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "demo transfer not made");
                continue;
            }
        };
        if kind == "12333"
            && answer["state"] == "granted"
            && let Some(id) = answer["id"].as_str()
        {
            tokio::spawn(call(client.clone(), base.clone(), id.to_owned()));
        }
    }
}

/// What the home CTI reports of a call that works, a second apart.
async fn call(client: reqwest::Client, base: String, id: String) {
    for event in ["ringing", "connected", "originator_left", "completed"] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let url = format!("{base}/api/v1/transfers/{id}/events");
        let body = json!({"event": event, "event_id": format!("{id}-{event}")});
        if let Err(e) = post(&client, &url, &body).await {
            tracing::warn!(error = %e, "demo transfer event not reported");
        }
    }
}

/// 12345 offers a caller to 12348; the home CTI simulator grants; the call then goes through.
async fn inbound(client: &reqwest::Client, base: &str, sim: &MappedSim, call_id: &str) {
    let ticket = serde_json::to_value(random_draft()).unwrap_or_default();
    let offer = json!({
        "message": {"id": format!("{call_id}-M")},
        "transfer": {"id": format!("ZJ-{call_id}"), "call_id": call_id, "agent_id": "8012"},
        "ticket": ticket,
    });
    match sim.offer_transfer(&offer).await {
        Ok((200, Ok(_))) => {}
        Ok((status, answer)) => {
            tracing::warn!(status, ?answer, "demo inbound transfer not answered");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "demo inbound transfer not offered");
            return;
        }
    }
    // Find the gateway's id for it, then report the call as the home CTI.
    let url = format!("{base}/api/v1/transfers?direction=inbound&limit=5");
    let Ok(list) = async { client.get(url).send().await?.json::<Vec<Value>>().await }.await else {
        return;
    };
    if let Some(id) = list
        .iter()
        .find(|t| t["call_id"] == call_id)
        .and_then(|t| t["id"].as_str())
    {
        tokio::spawn(call(client.clone(), base.to_owned(), id.to_owned()));
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let r = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("HTTP {status}: {v}"))
    }
}
