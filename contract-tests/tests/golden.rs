//! Every partner, every message type it supports, both directions, pinned by golden files.

use contract_tests::golden::{check, extension, mappings_dir, partner_dirs, sample_names};
use hotline_adapters::mapped::load_folder;
use serde_json::Value;

fn pretty(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s.into_bytes()
}

/// Keeps only what `sub` has, to compare a round trip on the fields a partner carries.
fn project(full: &Value, shape: &Value) -> Value {
    match (full, shape) {
        (Value::Object(f), Value::Object(s)) => Value::Object(
            s.iter()
                .map(|(k, sv)| {
                    (
                        k.clone(),
                        f.get(k).map_or(Value::Null, |fv| project(fv, sv)),
                    )
                })
                .collect(),
        ),
        (v, _) => v.clone(),
    }
}

#[test]
fn golden_samples_in_both_directions_for_every_message_type() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in partner_dirs() {
        let (m, _) = load_folder(&dir).unwrap_or_else(|e| panic!("{e}"));
        let ext = extension(&m);
        let samples = dir.join("samples");
        for t in m.message_types() {
            for name in sample_names(t) {
                // Outbound: canonical → partner wire, byte for byte.
                let canonical_file = mappings_dir()
                    .join("canonical")
                    .join(format!("{name}.json"));
                let canonical: Value = serde_json::from_slice(
                    &std::fs::read(&canonical_file)
                        .unwrap_or_else(|e| panic!("{}: {e}", canonical_file.display())),
                )
                .unwrap();
                let sent = samples.join(format!("{name}.sent.{ext}"));
                match m.encode(t, &canonical, false) {
                    Ok((wire, _)) => {
                        if let Err(e) = check(&sent, &wire) {
                            failures.push(e);
                        }
                        // What we send decodes back to what we meant, on every field the partner has.
                        match m.decode_sent(&wire) {
                            Ok(back) => {
                                let back = Value::from(back.doc);
                                let carried = project(&canonical, &back);
                                if carried != back {
                                    failures.push(format!(
                                        "{} {t}: round trip lost data:\n{carried}\nvs\n{back}",
                                        m.partner
                                    ));
                                }
                            }
                            Err(e) => failures.push(format!(
                                "{} {t}: our own message does not decode: {e}",
                                m.partner
                            )),
                        }
                    }
                    Err(e) => failures.push(format!(
                        "{} {t}: cannot encode the canonical sample: {e}",
                        m.partner
                    )),
                }
                // Inbound: the partner's message → canonical, and it must be a valid inbound message.
                let inbound = samples.join(format!("{name}.{ext}"));
                if std::env::var_os("BLESS").is_some()
                    && !inbound.exists()
                    && let Ok((wire, _)) = m.encode(t, &canonical, false)
                {
                    std::fs::write(&inbound, wire).unwrap();
                }
                let bytes = match std::fs::read(&inbound) {
                    Ok(b) => b,
                    Err(e) => {
                        failures.push(format!("{}: {e}", inbound.display()));
                        continue;
                    }
                };
                match m.decode(&bytes) {
                    Ok(t2) => {
                        if t2.message_type != t {
                            failures.push(format!(
                                "{}: is a `{}` message",
                                inbound.display(),
                                t2.message_type
                            ));
                        }
                        if let Err(e) = check(
                            &samples.join(format!("{name}.canonical.json")),
                            &pretty(&Value::from(t2.doc.clone())),
                        ) {
                            failures.push(e);
                        }
                        // A transfer answer only comes back as the answer to our offer.
                        let valid = if t == "transfer_answer" {
                            m.into_answer(t2).map(|_| ())
                        } else {
                            m.into_inbound(t2).map(|_| ())
                        };
                        if let Err(e) = valid {
                            failures.push(format!(
                                "{}: not a valid inbound message: {e}",
                                inbound.display()
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{}: {e}", inbound.display())),
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 20, "only {checked} message types checked");
}
