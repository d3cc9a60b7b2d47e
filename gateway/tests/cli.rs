//! The command line: `mapping test` on the shipped samples, and `check-config` on mappings.

use std::path::PathBuf;
use std::process::Command;

fn gateway(args: &[&str]) -> (bool, String, String) {
    gateway_with_env(args, [])
}

/// Runs the binary from the repository root with `env` added; success, stdout, stderr.
fn gateway_with_env(
    args: &[&str],
    env: impl IntoIterator<Item = (String, String)>,
) -> (bool, String, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(args)
        .current_dir(root)
        .envs(env)
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mapping test --partner P --message M --decode|--encode FILE`; `mode` is `--decode` or
/// `--encode`.
fn mapping_test(partner: &str, message: &str, mode: &str, file: &str) -> (bool, String, String) {
    gateway(&[
        "mapping",
        "test",
        "--partner",
        partner,
        "--message",
        message,
        mode,
        file,
    ])
}

#[test]
fn mapping_test_decodes_every_shipped_sample() {
    for (partner, file) in [
        ("12345", "mappings/12345/samples/dispatch.xml"),
        ("12315", "mappings/12315/samples/dispatch.json"),
        ("12333", "mappings/12333/samples/dispatch.xml"),
        ("12338", "mappings/12338/samples/dispatch.json"),
    ] {
        let (ok, out, err) = mapping_test(partner, "dispatch", "--decode", file);
        assert!(ok, "{partner}: {err}");
        assert!(out.contains("\"ticket\""), "{out}");
        assert!(out.contains("正确 OK: a valid ticket"), "{out}");
    }
    let (ok, out, err) = mapping_test(
        "12333",
        "reply",
        "--decode",
        "mappings/12333/samples/reply.xml",
    );
    assert!(ok, "{err}");
    assert!(out.contains("a valid `reply` event"), "{out}");
}

#[test]
fn mapping_test_encodes_canonical_json_into_each_dialect() {
    let (ok, out, err) = mapping_test(
        "12333",
        "dispatch",
        "--encode",
        "mappings/canonical/dispatch.json",
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with(r#"<?xml version="1.0" encoding="GB18030"?><Package>"#),
        "{out}"
    );
    assert!(out.contains("<Category>投诉</Category>"), "{out}");
    assert!(out.contains("bytes of GB18030"), "{out}");

    let (ok, out, _) = mapping_test(
        "12315",
        "dispatch",
        "--encode",
        "mappings/canonical/dispatch.json",
    );
    assert!(ok);
    assert!(out.contains(r#""appealType":1"#), "{out}");
}

#[test]
fn mapping_test_reports_errors_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings/12345/samples/dispatch.xml"),
    )
    .unwrap()
    .replace("<SQLX>4</SQLX>", "<SQLX>8</SQLX>");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = mapping_test("12345", "dispatch", "--decode", bad.to_str().unwrap());
    assert!(!ok);
    assert!(err.contains("`SQLX`: unknown code `8`"), "{err}");
    let (ok, _, err) = mapping_test(
        "12345",
        "reply",
        "--decode",
        "mappings/12345/samples/dispatch.xml",
    );
    assert!(!ok);
    assert!(err.contains("is a `dispatch` message"), "{err}");
}

#[test]
fn check_config_reports_mapping_problems_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("broken");
    std::fs::create_dir_all(&mapping).unwrap();
    std::fs::write(
        mapping.join("mapping.toml"),
        "partner = \"broken\"\nversion = \"1\"\nformat = \"json\"\ntype_field = \"t\"\n\n[messages.dispatch]\ncode = \"D\"\nfield = [\n  { path = \"a\", canonical = \"ticket.colour\" },\n]\n",
    )
    .unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings/12338/partner.toml"),
        mapping.join("partner.toml"),
    )
    .unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "mappings_dir = \"{}\"\n[partners.broken]\nadapter = \"mapped\"\nurl = \"http://127.0.0.1:9/x\"\nsigning_secret = \"0123456789abcdef0\"\nverify_secret = \"0123456789abcdef0\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (ok, _, err) = gateway(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    let expected = format!(
        "{}:9: `messages.dispatch.field[0].canonical`: `ticket.colour` is not a canonical field",
        mapping.join("mapping.toml").display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("`partners.broken.mapping`"), "{err}");
}

#[test]
fn the_partner_example_config_is_valid_from_the_repository_root() {
    let (ok, out, err) = gateway(&[
        "check-config",
        "--config",
        "deploy/config/gateway.partners.example.toml",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(6 partners)"), "{out}");
}

#[test]
fn calendar_commands_check_working_days_by_hand() {
    let (ok, out, _) = gateway(&[
        "calendar",
        "add-working-days",
        "--from",
        "2026-09-18T15:00:00+08:00",
        "--days",
        "1",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), "2026-09-20T15:00:00+08:00");
    let (ok, out, _) = gateway(&[
        "calendar",
        "add-working-days",
        "--from",
        "2026-09-30T08:00:00Z",
        "--days",
        "1",
    ]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "2026-10-08T16:00:00+08:00",
        "UTC input, Beijing output"
    );
    for (date, expected) in [
        ("2026-10-10", "true"),
        ("2026-10-05", "false"),
        ("2026-11-22", "false"),
        ("2026-11-23", "true"),
    ] {
        let (ok, out, err) = gateway(&["calendar", "is-working-day", date]);
        assert!(ok && err.is_empty(), "{err}");
        assert_eq!(out.trim(), expected, "{date}");
    }
    let (ok, out, err) = gateway(&[
        "calendar",
        "add-working-days",
        "--from",
        "2026-12-30T10:00:00+08:00",
        "--days",
        "3",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), "2027-01-04T10:00:00+08:00");
    assert!(err.contains("provisional"), "{err}");
    let (ok, _, err) = gateway(&["calendar", "is-working-day", "2026-02-30"]);
    assert!(!ok);
    assert!(err.contains("2026-02-30"), "{err}");
}

/// The container image's configuration (deploy/Dockerfile: the example file plus its `ENV`
/// overrides) passes `check-config`, with the image's paths pointed at this checkout.
#[test]
fn the_container_configuration_is_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    let data = tempfile::tempdir().unwrap();
    // Continuation lines joined, then each `ENV K=V K=V` instruction split into pairs.
    let joined = dockerfile.replace("\\\n", " ");
    let env: Vec<(String, String)> = joined
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("/opt/hotline-gateway", &root.display().to_string())
                .replace(
                    "/var/lib/hotline-gateway",
                    &data.path().display().to_string(),
                );
            (k.to_owned(), v)
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "HOTLINE_GATEWAY__STORE__PATH"),
        "no store path among the image's ENV: {env:?}"
    );
    let (ok, _, err) = gateway_with_env(
        &[
            "check-config",
            "--config",
            "deploy/config/gateway.example.toml",
        ],
        env,
    );
    assert!(ok, "{err}");
    // Every file the image copies exists.
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(root.join(src).exists(), "{line}: {src} missing");
    }
}

fn hash_password(password: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hash_password_makes_a_hash_the_dashboard_accepts() {
    let (ok, out, err) = hash_password("足够长的密码 long enough");
    assert!(ok, "{err}");
    let hash = out.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::PasswordVerifier;
    assert!(
        argon2::Argon2::default()
            .verify_password("足够长的密码 long enough".as_bytes(), hash)
            .is_ok()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[dashboard.users.wang]\nrole = \"admin\"\npassword_hash = \"{hash}\"\n\
             [dashboard.users.li]\nrole = \"operator\"\npassword_hash = \"plain-text\"\n"
        ),
    )
    .unwrap();
    let (ok, out, err) = gateway(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("dashboard.users.li.password_hash") && !err.contains("users.wang"),
        "only the plain-text password is flagged: {err}"
    );
    let (ok, _, err) = hash_password("short");
    assert!(!ok);
    assert!(err.contains("at least 12 characters"), "{err}");
}

/// The cluster example config is valid, and the compose file and Kubernetes manifests use it,
/// the probes the gateway answers, and the secrets the config names.
#[test]
fn the_cluster_deployment_files_agree_with_the_gateway() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mappings = root.join("mappings");
    let (ok, out, err) = gateway_with_env(
        &[
            "check-config",
            "--config",
            "deploy/config/gateway.cluster.example.toml",
        ],
        vec![
            (
                "HOTLINE_GATEWAY__MAPPINGS_DIR".into(),
                mappings.display().to_string(),
            ),
            (
                "HOTLINE_GATEWAY__SLA__CALENDAR_DIR".into(),
                mappings.join("calendar").display().to_string(),
            ),
        ],
    );
    assert!(ok, "{out}{err}");
    // As compose runs it: through RabbitMQ, which needs its URL.
    let env = |extra: &[(&str, &str)]| {
        let mut v = vec![
            (
                "HOTLINE_GATEWAY__MAPPINGS_DIR".to_owned(),
                mappings.display().to_string(),
            ),
            (
                "HOTLINE_GATEWAY__SLA__CALENDAR_DIR".to_owned(),
                mappings.join("calendar").display().to_string(),
            ),
            (
                "HOTLINE_GATEWAY__DELIVERY__QUEUE".to_owned(),
                "rabbitmq".to_owned(),
            ),
        ];
        v.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        v
    };
    let args = [
        "check-config",
        "--config",
        "deploy/config/gateway.cluster.example.toml",
    ];
    let (ok, _, err) = gateway_with_env(&args, env(&[]));
    assert!(!ok && err.contains("delivery.amqp_url"), "{err}");
    let (ok, out, err) = gateway_with_env(
        &args,
        env(&[(
            "HOTLINE_GATEWAY__DELIVERY__AMQP_URL",
            "amqp://hotline:x@rabbitmq:5672/%2f",
        )]),
    );
    assert!(ok, "{out}{err}");
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap();
    assert!(compose.contains("HOTLINE_GATEWAY__DELIVERY__QUEUE: rabbitmq"));
    assert!(compose.contains("HOTLINE_GATEWAY__DELIVERY__AMQP_URL"));
    let deployment = std::fs::read_to_string(root.join("deploy/k8s/deployment.yaml")).unwrap();
    let kustomization =
        std::fs::read_to_string(root.join("deploy/k8s/kustomization.yaml")).unwrap();
    assert!(
        compose.contains("./config/gateway.cluster.example.toml:/etc/hotline-gateway/gateway.toml")
    );
    assert!(kustomization.contains("gateway.toml=../config/gateway.cluster.example.toml"));
    for env in [
        "HOTLINE_GATEWAY__STORE__URL",
        "HOTLINE_GATEWAY__PRIVACY__CALLER_HASH_KEY",
    ] {
        assert!(compose.contains(env) && deployment.contains(env), "{env}");
    }
    for path in ["path: /readyz", "path: /healthz"] {
        assert!(deployment.contains(path), "{path}");
    }
    assert!(compose.contains("\"probe\", \"--url\", \"http://127.0.0.1:8348/readyz\""));
    for file in [
        "service.yaml",
        "pdb.yaml",
        "deployment.yaml",
        "secret.example.yaml",
    ] {
        assert!(root.join("deploy/k8s").join(file).exists(), "{file}");
        assert!(
            file == "secret.example.yaml" || kustomization.contains(file),
            "{file} not in the kustomization"
        );
    }
}

#[test]
fn probe_fails_on_no_answer_and_names_the_url() {
    let (ok, _, err) = gateway(&["probe", "--url", "http://127.0.0.1:9/readyz"]);
    assert!(!ok);
    assert!(
        err.contains("no answer from http://127.0.0.1:9/readyz"),
        "{err}"
    );
}

/// `audit verify` on a real database: intact, then after an edit and a deletion made behind the
/// product's back (its triggers dropped, as an intruder with database access would).
#[tokio::test]
async fn audit_verify_detects_an_edited_or_deleted_entry() {
    use hotline_gateway::store::{NewAudit, SqliteStore, Store};
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let store = SqliteStore::open(&db).await.unwrap();
    for i in 0..5 {
        store
            .record_audit(NewAudit {
                actor: "li".into(),
                role: "operator".into(),
                action: "delivery.retry".into(),
                target: Some(format!("d{i}")),
                reason: Some("对方已恢复".into()),
                detail: serde_json::json!({ "i": i }),
            })
            .await
            .unwrap();
    }
    drop(store);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "mappings_dir = {:?}\n[store]\npath = {:?}\n[sla]\ncalendar_dir = {:?}\n",
            root.join("mappings").display().to_string(),
            db.display().to_string(),
            root.join("mappings/calendar").display().to_string()
        ),
    )
    .unwrap();
    let verify = || gateway(&["audit", "verify", "--config", config.to_str().unwrap()]);
    let (ok, out, err) = verify();
    assert!(ok, "{out}{err}");
    assert!(out.contains("5 entries"), "{out}");

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for sql in [
        "DROP TRIGGER audit_log_no_update",
        "DROP TRIGGER audit_log_no_delete",
        "UPDATE audit_log SET reason = '无' WHERE seq = 3",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let (ok, _, err) = verify();
    assert!(!ok);
    assert!(err.contains("audit entry 3 was edited"), "{err}");
    sqlx::query("UPDATE audit_log SET reason = '对方已恢复' WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(verify().0, "restored");
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, _, err) = verify();
    assert!(!ok);
    assert!(err.contains("audit entry 2 is missing"), "{err}");
}

#[test]
fn api_token_prints_a_token_and_a_config_table_that_checks() {
    let (ok, out, err) = gateway(&[
        "api-token",
        "--name",
        "home-12348",
        "--scopes",
        "tickets,transfers",
    ]);
    assert!(ok, "{err}");
    let token = out
        .lines()
        .find_map(|l| l.split("shown once): ").nth(1))
        .expect("the token line")
        .trim()
        .to_owned();
    let table: String = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(table.contains(&hotline_gateway::api::auth::token_hash(&token)));
    assert!(
        !table.contains(&token),
        "only the hash goes into the configuration"
    );
    assert!(
        table.contains("scopes = [\"tickets\", \"transfers\"]"),
        "{table}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(
        &path,
        format!(
            "mappings_dir = {:?}\n[sla]\ncalendar_dir = {:?}\n{table}\n",
            root.join("mappings").display().to_string(),
            root.join("mappings/calendar").display().to_string()
        ),
    )
    .unwrap();
    let (ok, out, err) = gateway(&["check-config", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = gateway(&["api-token", "--name", "x", "--scopes", "root"]);
    assert!(!ok && err.contains("unknown scope `root`"), "{err}");
}
