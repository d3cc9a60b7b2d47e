//! The dashboard in real headless Chromium: `tests/browser/dashboard.mjs` (playwright-core
//! driving Debian's `/usr/bin/chromium`) logs in as a viewer and an operator, watches the
//! partner tiles update live, opens a dead letter, retries it, replays the rest, and reads the
//! audit log. Screenshots of the main pages land in `target/dashboard-screenshots/`.
//!
//! Needs `chromium` (Debian package) and `npm ci --prefix gateway/tests/browser`; `.ci/run`
//! installs both. Without them this test fails and says what is missing.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::store::DeliveryStatus;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_dead_letters_in_chromium_and_a_viewer_cannot() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install chromium` (or run .ci/run, which does)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: `npm ci --prefix gateway/tests/browser` (or run .ci/run)"
    );
    let h = Harness::start_with(Behaviour::Ack, fast_retry(2), dashboard_users).await;
    h.sim.set_behaviour(Behaviour::Fail { status: 400 });
    let mut dead = Vec::new();
    for i in 0..3 {
        let (status, created) = h.post_ticket(&format!("BR-{i}")).await;
        assert_eq!(status, 201, "{created}");
        let id = first_delivery(&created);
        h.wait_for_status(&id, DeliveryStatus::Dead, Duration::from_secs(10))
            .await;
        dead.push(id);
    }
    let first = h.delivery(&dead[0]).await;
    let phone = h
        .gateway
        .store
        .ticket(first.ticket_id)
        .await
        .unwrap()
        .unwrap()
        .draft
        .caller
        .phone;
    h.sim.set_behaviour(Behaviour::Ack);

    // A trickle of tickets, so the operator sees the tiles move.
    let feeder = {
        let http = h.http.clone();
        let base = h.base.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let body = serde_json::json!({
                    "external_id": format!("FEED-{i}"),
                    "target": PARTNER,
                    "ticket": contract_tests::samples::random_draft(),
                });
                let _ = post_json(&http, format!("{base}/api/v1/tickets"), &body).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("BASE_URL", &h.base)
        .env("PASSWORD", DASHBOARD_PASSWORD)
        .env("SHOTS", &shots)
        .env("DEAD", dead.join(","))
        .env("DEAD_PHONE", &phone)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes")
        .expect("node runs");
    feeder.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("browser: done"), "{stdout}");
    for shot in [
        "overview",
        "dead-letters",
        "ticket",
        "ticket-viewer",
        "replay-progress",
        "audit",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).exists(),
            "{shot}.png saved"
        );
    }
    // What the browser did is on record.
    let audit = h
        .gateway
        .store
        .audit_log(&Default::default())
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["deliveries.replay", "delivery.retry"]);
    assert!(audit.iter().all(|e| e.actor == "li"));
}
