//! The real binary killed with SIGKILL between accepting tickets and delivering them: after a
//! restart every accepted ticket is delivered, each once in effect.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::Behaviour;
use serde_json::{Value, json};

fn write_config(dir: &Path, port: u16, partner_url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[store]
path = "{db}"

[api]
allow_anonymous = true

[delivery]
lease = "5s"
poll_interval = "100ms"

[sla]
calendar_dir = "{calendar}"

[partners.{PARTNER}]
adapter = "webhook"
url = "{partner_url}"
signing_secret = "{OUR_SECRET}"
verify_secret = "{THEIR_SECRET}"
timeout = "2s"

[partners.{PARTNER}.retry]
min_delay = "200ms"
max_delay = "1s"
factor = 2.0
max_attempts = 50
"#,
        db = dir.join("gateway.db").display(),
        calendar = mappings_dir().join("calendar").display(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

#[tokio::test]
async fn sigkill_between_accept_and_delivery_loses_nothing() {
    let sim = start_sim(PARTNER).await;
    sim.set_behaviour(Behaviour::Fail { status: 503 }); // the partner is down
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, &sim.url());
    let http = reqwest::Client::new();

    let mut gw = spawn_serve(&config);
    wait_ready(&http, &base).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let body =
            json!({"external_id": format!("K-{i}"), "target": PARTNER, "ticket": random_draft()});
        let r = http
            .post(format!("{base}/api/v1/tickets"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    gw.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    gw.0.wait().unwrap();
    assert!(
        sim.received().is_empty(),
        "nothing could be delivered before the kill"
    );

    sim.set_behaviour(Behaviour::Ack); // the partner is back
    let _gw = spawn_serve(&config);
    wait_ready(&http, &base).await;
    let delivered = wait_until(Duration::from_secs(30), || async {
        (sim.received().len() >= ids.len()).then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "only {} of {} delivered",
        sim.received().len(),
        ids.len()
    );

    let mut got: Vec<String> = sim
        .received()
        .iter()
        .filter(|r| r.message_type == "dispatch")
        .map(|r| r.envelope["ticket"]["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(
        got, ids,
        "each accepted ticket delivered exactly once in effect"
    );
    let all_acked = wait_until(Duration::from_secs(10), || async {
        let r = http
            .get(format!(
                "{base}/api/v1/deliveries?status=acknowledged&limit=1000"
            ))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v.as_array()?.len() == ids.len()).then_some(())
    })
    .await;
    assert!(
        all_acked.is_some(),
        "every delivery recorded as acknowledged"
    );
}

#[test]
fn check_config_reports_problems_with_lines_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:1\"\nmystery = 1\n\n[partners.p1]\nadapter = \"webhook\"\nurl = \"nope\"\nsigning_secret = \"x\"\nverify_secret = \"whsec_dGVzdC1wYXJ0bmVyLXNpZ25pbmctc2VjcmV0\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    assert!(
        err.contains(&format!("{shown}:3: `server.mystery`: unknown key")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:7: `partners.p1.url`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:8: `partners.p1.signing_secret`")),
        "{err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        include_str!("../../deploy/config/gateway.example.toml"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(["check-config", "--config"])
        .arg(&good)
        .current_dir(mappings_dir().join(".."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

/// `systemctl reload` sends SIGHUP: the gateway keeps running (and reloads TLS when it has it).
#[tokio::test]
async fn sighup_does_not_stop_the_gateway() {
    let sim = start_sim(PARTNER).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, &sim.url());
    let http = reqwest::Client::new();
    let gw = spawn_serve(&config);
    wait_ready(&http, &base).await;
    let hup = Command::new("kill")
        .args(["-HUP", &gw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still serving after SIGHUP");
}
