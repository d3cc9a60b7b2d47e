//! The gateway over TLS with partner client certificates (certificates made here with rcgen):
//! an untrusted certificate is refused at the handshake, a partner's certificate opens only its
//! own ingress, a partner bound to a certificate cannot post without one, and the home side
//! reaches the server without a client certificate.

mod common;

use common::certs::*;
use common::*;
use contract_tests::webhook_sim::Behaviour;

fn client(ca: &Ca, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn sample(partner: &str, name: &str) -> Vec<u8> {
    std::fs::read(mappings_dir().join(partner).join("samples").join(name)).unwrap()
}

#[tokio::test]
async fn partner_certificates_open_only_their_own_ingress() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = ca("12348 partner CA");
    let rogue = ca("someone else");
    let server = leaf(&trusted, "gateway", &["localhost"]);
    let p12345 = leaf(
        &trusted,
        "12345.partner.example",
        &["12345.partner.example"],
    );
    let p12315 = leaf(&trusted, "12315.partner.example", &[]);
    let impostor = leaf(&rogue, "12345.partner.example", &["12345.partner.example"]);
    let tls = hotline_gateway::serve::TlsConfig {
        cert: write(dir.path(), "server.pem", &server.0),
        key: write(dir.path(), "server.key", &server.1),
        client_ca: Some(write(dir.path(), "ca.pem", &trusted.pem)),
    };
    let (s12345, s12315) = (mapped_sim("12345").await, mapped_sim("12315").await);
    let mut c12345 = mapped_partner(&s12345);
    c12345.tls_identity = Some("12345.partner.example".into());
    let mut c12315 = mapped_partner(&s12315);
    c12315.tls_identity = Some("12315.partner.example".into());
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), move |c| {
        c.server.tls = Some(tls);
        c.partners.insert("12345".into(), c12345);
        c.partners.insert("12315".into(), c12315);
        assert!(c.check().is_empty(), "{:?}", c.check());
    })
    .await;
    let base = format!("https://localhost:{}", h.gateway.addr.port());
    let body = sample("12345", "dispatch.xml");
    let post = |client: reqwest::Client,
                partner: &'static str,
                sim: &contract_tests::mapped_sim::MappedSim| {
        let headers = sim.signed_headers(&body).unwrap();
        let url = format!("{base}/partners/{partner}/messages");
        let body = body.clone();
        async move { client.post(url).headers(headers).body(body).send().await }
    };

    // 12345 with its own certificate: accepted.
    let ok = post(client(&trusted, Some(&p12345)), "12345", &s12345)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    // 12345's certificate cannot post as 12315, even with a valid 12315 signature. (12315's
    // dialect answers HTTP 200 with its own code; the refusal is in the body.)
    let as_other = post(client(&trusted, Some(&p12345)), "12315", &s12315)
        .await
        .unwrap();
    let text = as_other.text().await.unwrap();
    assert!(text.contains("not this partner's"), "{text}");
    assert!(
        s12315.received().is_empty()
            && h.gateway
                .store
                .tickets(&Default::default())
                .await
                .unwrap()
                .len()
                == 1,
        "nothing of it was taken"
    );
    // 12315's own certificate does not carry 12345's name either.
    let swapped = post(client(&trusted, Some(&p12315)), "12345", &s12345)
        .await
        .unwrap();
    assert_eq!(swapped.status(), 403);
    // No certificate: the handshake passes (the home side needs none), the ingress refuses.
    let none = post(client(&trusted, None), "12345", &s12345)
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    // A certificate from another CA, even with the right name, fails the handshake.
    let refused = post(client(&trusted, Some(&impostor)), "12345", &s12345).await;
    assert!(
        refused.is_err(),
        "an untrusted client certificate got through"
    );
    // Plain HTTP to the TLS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            h.gateway.addr.port()
        ))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // The home side, without a client certificate, is served.
    let health = client(&trusted, None)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn a_tls_identity_needs_a_client_ca() {
    let mut c = hotline_gateway::config::Config::default();
    let mut p = partner_config("http://127.0.0.1:9".into(), fast_retry(1));
    p.tls_identity = Some("x".into());
    c.partners.insert("p1".into(), p);
    let problems = c.check();
    assert!(
        problems
            .iter()
            .any(|(k, _)| k == "partners.p1.tls_identity"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn certificates_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (ca("old CA"), ca("new CA"));
    let old = leaf(&old_ca, "gateway", &["localhost"]);
    let new = leaf(&new_ca, "gateway", &["localhost"]);
    let cert = write(dir.path(), "server.pem", &old.0);
    let key = write(dir.path(), "server.key", &old.1);
    let tls = hotline_gateway::serve::TlsConfig {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    };
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), move |c| {
        c.server.tls = Some(tls);
    })
    .await;
    let base = format!("https://localhost:{}", h.gateway.addr.port());
    let health = |ca: &Ca| {
        let c = client(ca, None);
        let url = format!("{base}/healthz");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(health(&old_ca).await.unwrap(), 200);
    assert!(
        health(&new_ca).await.is_err(),
        "the new certificate is not served yet"
    );

    // A broken file is refused and the current certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let reload = |ca: &Ca| {
        let c = client(ca, None);
        let url = format!("{base}/api/v1/admin/tls/reload");
        async move { c.post(url).send().await.unwrap() }
    };
    let refused = reload(&old_ca).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("server.tls") && text.contains("current configuration stays"),
        "{text}"
    );
    assert_eq!(health(&old_ca).await.unwrap(), 200);

    std::fs::write(&cert, &new.0).unwrap();
    std::fs::write(&key, &new.1).unwrap();
    assert_eq!(reload(&old_ca).await.status(), 204);
    assert_eq!(
        health(&new_ca).await.unwrap(),
        200,
        "new connections get the new certificate"
    );
    assert!(health(&old_ca).await.is_err());
}

#[tokio::test]
async fn deliveries_present_the_partner_client_certificate_and_rotate_it() {
    let dir = tempfile::tempdir().unwrap();
    // 12315's own CA for its server, and the CA it trusts for our client certificate.
    let (server_ca, client_ca, rogue) = (ca("12315 server CA"), ca("12315 client CA"), ca("rogue"));
    let sim = contract_tests::mapped_sim::MappedSim::start_tls(
        contract_tests::mapped_sim::MappedSimOptions {
            dir: &mappings_dir().join("12315"),
            app_id: "hotline-12348".into(),
            gateway_secret: MAPPED_GATEWAY_SECRET.into(),
            partner_secret: MAPPED_PARTNER_SECRET.into(),
        },
        partner_server(&leaf(&server_ca, "12315", &["localhost"]), &client_ca),
    )
    .await
    .unwrap();
    assert!(sim.url().starts_with("https://localhost:"));
    // First a certificate the partner does not trust: every handshake fails.
    let untrusted = leaf(&rogue, "hotline-12348", &[]);
    let cert = write(dir.path(), "client.pem", &untrusted.0);
    let key = write(dir.path(), "client.key", &untrusted.1);
    let mut p = mapped_partner(&sim);
    p.retry = fast_retry(1000);
    p.breaker.failures = 0;
    p.outbound_tls = Some(hotline_adapters::http::OutboundTls {
        ca: Some(write(dir.path(), "server-ca.pem", &server_ca.pem)),
        cert: Some(cert.clone()),
        key: Some(key.clone()),
    });
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), move |c| {
        c.partners.insert("12315".into(), p);
        assert!(c.check().is_empty(), "{:?}", c.check());
    })
    .await;
    let (status, created) = h
        .post_json(
            "/api/v1/tickets",
            &serde_json::json!({"external_id": "TLS-1", "target": "12315",
                "ticket": contract_tests::samples::random_draft()}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = first_delivery(&created);
    let failed = wait_until(std::time::Duration::from_secs(10), || async {
        let d = h.delivery(&id).await;
        (d.attempts >= 2).then_some(d)
    })
    .await
    .expect("attempts were made");
    assert!(
        sim.received().is_empty(),
        "the partner took a delivery without a trusted client certificate"
    );
    assert!(failed.last_error.is_some(), "{failed:?}");

    // A broken key file is refused by the reload, naming the partner's setting.
    std::fs::write(&key, "not a key").unwrap();
    let reload = || {
        let url = format!("{}/api/v1/admin/tls/reload", h.base);
        let http = h.http.clone();
        async move { http.post(url).send().await.unwrap() }
    };
    let refused = reload().await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("partners.12315.") && text.contains("outbound_tls"),
        "{text}"
    );

    // The certificate the partner trusts, rotated in without a restart: the delivery goes through.
    let trusted = leaf(&client_ca, "hotline-12348", &[]);
    std::fs::write(&cert, &trusted.0).unwrap();
    std::fs::write(&key, &trusted.1).unwrap();
    assert_eq!(reload().await.status(), 204);
    wait_until(std::time::Duration::from_secs(10), || async {
        (sim.received().len() == 1).then_some(())
    })
    .await
    .expect("delivered over mutual TLS after the rotation");
}

#[test]
fn outbound_tls_files_are_checked_at_start() {
    let mut c = hotline_gateway::config::Config::default();
    let mut p = partner_config("https://127.0.0.1:9".into(), fast_retry(1));
    p.outbound_tls = Some(hotline_adapters::http::OutboundTls {
        ca: None,
        cert: Some("/nonexistent/client.pem".into()),
        key: None,
    });
    c.partners.insert("p1".into(), p);
    let problems = c.check();
    assert!(
        problems
            .iter()
            .any(|(k, m)| k == "partners.p1.outbound_tls" && m.contains("together")),
        "{problems:?}"
    );
}

#[test]
fn tls_files_for_a_plain_amqp_bus_are_a_mistake_named_at_the_check() {
    let mut c = hotline_gateway::config::Config::default();
    let mut p = partner_config(String::new(), fast_retry(1));
    p.adapter = hotline_gateway::config::AdapterKind::Mapped;
    p.bus = Some(hotline_gateway::config::BusConfig {
        url: "amqp://127.0.0.1:5672/%2f".into(),
        outbound_exchange: "fawang.in".into(),
        inbound_exchange: "fawang.out".into(),
        queue: "gateway.from-fawang".into(),
        prefetch: 8,
    });
    p.outbound_tls = Some(hotline_adapters::http::OutboundTls {
        ca: Some("/etc/hotline/bus-ca.pem".into()),
        cert: None,
        key: None,
    });
    c.partners.insert("fawang".into(), p.clone());
    let problems = c.check();
    assert!(
        problems
            .iter()
            .any(|(k, m)| k == "partners.fawang.outbound_tls" && m.contains("amqps://")),
        "{problems:?}"
    );
    // Over amqps:// the same files are what the bus uses.
    if let Some(b) = p.bus.as_mut() {
        b.url = "amqps://127.0.0.1:5671/%2f".into();
    }
    c.partners.insert("fawang".into(), p);
    let problems = c.check();
    assert!(
        !problems.iter().any(|(k, _)| k.contains("outbound_tls")),
        "{problems:?}"
    );
}

#[test]
fn the_delivery_queue_s_tls_files_need_an_amqps_queue() {
    let mut c = hotline_gateway::config::Config::default();
    c.delivery.amqp_tls = Some(hotline_adapters::http::OutboundTls {
        ca: Some("/etc/hotline/mq-ca.pem".into()),
        cert: Some("/etc/hotline/mq-client.pem".into()),
        key: None,
    });
    let keys: Vec<String> = c
        .check()
        .into_iter()
        .map(|(k, m)| format!("{k}: {m}"))
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("delivery.amqp_tls: would not be used")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.contains("go together")), "{keys:?}");
    c.delivery.queue = hotline_gateway::config::QueueKind::Rabbitmq;
    c.delivery.amqp_url = Some("amqps://mq.example.gov.cn:5671/%2f".into());
    c.delivery.amqp_tls = Some(hotline_adapters::http::OutboundTls {
        ca: Some("/etc/hotline/mq-ca.pem".into()),
        cert: None,
        key: None,
    });
    let left = c.check();
    assert!(
        !left.iter().any(|(k, _)| k.starts_with("delivery")),
        "{left:?}"
    );
}

#[test]
fn plain_http_beyond_this_machine_needs_an_explicit_permission() {
    let mut c = hotline_gateway::config::Config::default();
    c.server.listen = "0.0.0.0:8348".parse().unwrap();
    let mut remote = partner_config("http://12345.example.gov.cn/in".into(), fast_retry(1));
    remote.transfer_url = Some("http://12345.example.gov.cn/cti".into());
    c.partners.insert("p1".into(), remote.clone());
    c.partners.insert(
        "p2".into(),
        partner_config("http://127.0.0.1:9/in".into(), fast_retry(1)),
    );
    c.partners.insert(
        "p3".into(),
        partner_config("https://12315.example.gov.cn/in".into(), fast_retry(1)),
    );
    let keys: Vec<String> = c.check().into_iter().map(|(k, _)| k).collect();
    for expected in ["server.tls", "partners.p1.url", "partners.p1.transfer_url"] {
        assert!(keys.iter().any(|k| k == expected), "{expected}: {keys:?}");
    }
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("partners.p2") || k.starts_with("partners.p3")),
        "loopback and https need no permission: {keys:?}"
    );
    c.server.allow_plain_http = true;
    remote.allow_plain_http = true;
    c.partners.insert("p1".into(), remote);
    let left = c.check();
    assert!(
        !left
            .iter()
            .any(|(k, m)| k == "server.tls" || m.contains("unencrypted")),
        "{left:?}"
    );
}
