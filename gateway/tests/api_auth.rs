//! The home API needs a client's bearer token with the scope of what it touches.

mod common;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::api::auth::{ApiClient, ApiConfig, Scope, new_token};
use serde_json::json;

#[tokio::test]
async fn tokens_and_scopes_guard_the_home_api() {
    let (home, home_hash) = new_token();
    let (cti, cti_hash) = new_token();
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), move |c| {
        c.api = ApiConfig {
            allow_anonymous: false,
            clients: [
                ("home".to_owned(), home_hash, vec![Scope::Tickets]),
                ("cti".to_owned(), cti_hash, vec![Scope::Transfers]),
            ]
            .into_iter()
            .map(|(n, token_sha256, scopes)| {
                (
                    n,
                    ApiClient {
                        token_sha256,
                        scopes,
                    },
                )
            })
            .collect(),
        };
    })
    .await;
    let http = &h.http;
    let call = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut r = http.request(method, format!("{}{path}", h.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    let ticket = json!({"external_id": "AUTH-1", "target": PARTNER,
                        "ticket": contract_tests::samples::random_draft()});

    let none = call(reqwest::Method::POST, "/api/v1/tickets", None)
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");

    let wrong = call(
        reqwest::Method::GET,
        "/api/v1/tickets",
        Some("hgw_not-a-token"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = call(reqwest::Method::POST, "/api/v1/tickets", Some(&home))
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);

    // The home client may not touch dead letters or transfers; the CTI client no tickets.
    for (path, token, scope) in [
        ("/api/v1/deliveries?status=dead", &home, "admin"),
        ("/api/v1/transfers", &home, "transfers"),
        ("/api/v1/tickets", &cti, "tickets"),
    ] {
        let r = call(reqwest::Method::GET, path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(scope),
            "{path}: {body}"
        );
    }
    let r = call(reqwest::Method::GET, "/api/v1/transfers", Some(&cti))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // What stays open.
    for path in ["/healthz", "/readyz", "/api/v1/openapi.json", "/metrics"] {
        let r = call(reqwest::Method::GET, path, None).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}
