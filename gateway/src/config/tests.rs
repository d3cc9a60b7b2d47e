use super::*;

const EXAMPLE: &str = include_str!("../../../deploy/config/gateway.example.toml");

/// The repository's calendar, through the environment override (tests run in `gateway/`).
fn no_env() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/calendar");
    vec![(
        format!("{ENV_PREFIX}SLA__CALENDAR_DIR"),
        dir.display().to_string(),
    )]
}

#[test]
fn the_shipped_example_is_valid() {
    let c = Config::from_toml(EXAMPLE, no_env()).unwrap();
    let demo = &c.partners["demo"];
    assert_eq!(demo.adapter, AdapterKind::Webhook);
    assert_eq!(demo.retry.max_attempts, 10);
    assert_eq!(c.delivery.lease, Duration::from_secs(60));
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let c = Config::from_toml("", no_env()).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8348".parse().unwrap());
    assert!(c.partners.is_empty());
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"
[server]
listn = "127.0.0.1:1"

[partners.p1]
adapter = "webhook"
url = "ftp://example"
signing_secret = "nope"
verify_secret = "whsec_dmVyaWZ5LXNlY3JldC1mb3ItZGVtbyEhIQ=="
concurrency = 0

[partners.p1.retry]
factor = 0.5
"#;
    let problems = Config::from_toml(text, no_env()).unwrap_err();
    let got: Vec<(String, Option<usize>)> =
        problems.iter().map(|p| (p.key.clone(), p.line)).collect();
    assert_eq!(
        got,
        vec![
            ("server.listn".into(), Some(3)),
            ("partners.p1.url".into(), Some(7)),
            ("partners.p1.signing_secret".into(), Some(8)),
            ("partners.p1.concurrency".into(), Some(10)),
            ("partners.p1.retry.factor".into(), Some(13)),
        ],
        "{problems:#?}"
    );
}

#[test]
fn a_wrong_type_names_the_key_and_line() {
    let text = "[delivery]\nclaim_batch = \"many\"\n";
    let problems = Config::from_toml(text, no_env()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "delivery.claim_batch");
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(
        problems[0].message,
        "invalid type: string \"many\", expected u32"
    );
}

#[test]
fn a_syntax_error_gives_its_line() {
    let problems = Config::from_toml("[server]\nlisten = \n", no_env()).unwrap_err();
    assert_eq!(problems[0].line, Some(2));
}

#[test]
fn environment_overrides_apply_with_types() {
    let mut env = no_env();
    env.extend([
        (format!("{ENV_PREFIX}DELIVERY__CLAIM_BATCH"), "7".to_owned()),
        (
            format!("{ENV_PREFIX}PARTNERS__DEMO__URL"),
            "http://10.0.0.1/x".to_owned(),
        ),
        (
            format!("{ENV_PREFIX}PARTNERS__DEMO__ALLOW_PLAIN_HTTP"),
            "true".to_owned(),
        ),
        ("UNRELATED".to_owned(), "1".to_owned()),
    ]);
    let c = Config::from_toml(EXAMPLE, env).unwrap();
    assert_eq!(c.delivery.claim_batch, 7);
    assert_eq!(c.partners["demo"].url, "http://10.0.0.1/x");
    assert!(c.partners["demo"].allow_plain_http);
}

#[test]
fn a_partner_timeout_must_fit_in_the_lease() {
    let text = EXAMPLE.replace("timeout = \"10s\"", "timeout = \"90s\"");
    let problems = Config::from_toml(&text, no_env()).unwrap_err();
    assert_eq!(problems[0].key, "partners.demo.timeout");
}

#[test]
fn a_missing_calendar_folder_is_a_problem() {
    let env = vec![(
        format!("{ENV_PREFIX}SLA__CALENDAR_DIR"),
        "/nonexistent/calendar".to_owned(),
    )];
    let problems = Config::from_toml(EXAMPLE, env).unwrap_err();
    assert_eq!(problems[0].key, "sla.calendar_dir");
    assert!(
        problems[0].message.contains("/nonexistent/calendar"),
        "{}",
        problems[0].message
    );
}

#[test]
fn transfer_settings_are_checked() {
    let text = r#"
[partners.p1]
adapter = "webhook"
url = "http://127.0.0.1:9/"
transfer_url = "ftp://cti"
inbound_rate = 0
outbound_rate = 0
signing_secret = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLWRlbW8hIQ=="
verify_secret = "whsec_dmVyaWZ5LXNlY3JldC1mb3ItZGVtbyEhIQ=="

[transfers]
connect_timeout = "0s"

[transfers.hours.nobody]
open = "08:30"
close = "17:30"
"#;
    let problems = Config::from_toml(text, no_env()).unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"partners.p1.transfer_url"), "{problems:?}");
    assert!(keys.contains(&"transfers.connect_timeout"), "{problems:?}");
    assert!(keys.contains(&"partners.p1.inbound_rate"), "{problems:?}");
    assert!(keys.contains(&"partners.p1.outbound_rate"), "{problems:?}");
    assert!(keys.contains(&"transfers.hours.nobody"), "{problems:?}");
    let bad_time = "[transfers.hours.p1]\nopen = \"8h\"\nclose = \"17:30\"\n";
    let problems = Config::from_toml(bad_time, no_env()).unwrap_err();
    assert!(
        problems[0].message.contains("not a time like 08:30"),
        "{problems:?}"
    );
    assert_eq!(problems[0].key, "transfers.hours.p1.open");
}
