//! A captured, correctly signed partner request replayed: refused, also after a restart; an
//! altered body under captured headers is refused by the signature.

mod common;

use common::*;
use contract_tests::webhook_sim::Behaviour;

fn sample(partner: &str, name: &str) -> Vec<u8> {
    std::fs::read(mappings_dir().join(partner).join("samples").join(name)).unwrap()
}

#[tokio::test]
async fn a_replayed_request_is_refused_also_after_a_restart() {
    let sim = mapped_sim("12345").await;
    let partner = mapped_partner(&sim);
    let config = partner.clone();
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), move |c| {
        c.partners.insert("12345".into(), config);
    })
    .await;
    sim.set_gateway(&h.base);

    let body = sample("12345", "dispatch.xml");
    let captured = sim.signed_headers(&body).unwrap();
    let (status, answer) = sim
        .send_with_headers(captured.clone(), body.clone())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        sim.answer_code(&answer).as_deref(),
        Some("0000"),
        "{answer}"
    );

    let (status, answer) = sim
        .send_with_headers(captured.clone(), body.clone())
        .await
        .unwrap();
    assert_eq!(status, 401, "the replay is refused: {answer}");
    assert_ne!(sim.answer_code(&answer).as_deref(), Some("0000"));
    assert!(answer.to_string().contains("already used"), "{answer}");

    // Any other message is refused the same way (its nonce is remembered before it is handled,
    // whatever the outcome: this receipt names no ticket of ours).
    let receipt = sample("12345", "receipt.xml");
    let captured_receipt = sim.signed_headers(&receipt).unwrap();
    let (status, answer) = sim
        .send_with_headers(captured_receipt.clone(), receipt.clone())
        .await
        .unwrap();
    assert_ne!(status, 401, "{answer}");
    let (status, answer) = sim
        .send_with_headers(captured_receipt, receipt)
        .await
        .unwrap();
    assert_eq!(status, 401, "the replayed receipt is refused: {answer}");
    assert!(answer.to_string().contains("already used"), "{answer}");

    // Tampering under captured headers fails the signature.
    let altered = String::from_utf8(body.clone())
        .unwrap()
        .replace("<SQLX>4</SQLX>", "<SQLX>2</SQLX>")
        .into_bytes();
    assert_ne!(altered, body);
    let fresh = sim.signed_headers(&body).unwrap();
    let (status, answer) = sim.send_with_headers(fresh, altered).await.unwrap();
    assert_eq!(status, 401, "{answer}");
    assert!(answer.to_string().contains("signature"), "{answer}");

    // The nonce is remembered across a restart.
    let config = partner.clone();
    let h = h
        .restart(move |c| {
            c.partners.insert("12345".into(), config);
        })
        .await;
    sim.set_gateway(&h.base);
    let (status, answer) = sim.send_with_headers(captured, body.clone()).await.unwrap();
    assert_eq!(status, 401, "still refused after a restart: {answer}");
    // The partner itself, signing afresh (a new nonce), is answered as before.
    let (status, answer) = sim.send_raw(body).await.unwrap();
    assert_eq!(status, 200, "{answer}");
}
