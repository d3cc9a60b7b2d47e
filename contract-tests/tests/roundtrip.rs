//! Canonical → partner → canonical keeps every field the partner can carry, for random tickets;
//! every XML document produced on the way is valid against the partner's XSD (xmllint).

use contract_tests::golden::{mappings_dir, partner_dirs};
use contract_tests::xsd;
use hotline_adapters::mapped::load_folder;
use hotline_adapters::mapping::Mapping;
use proptest::prelude::*;
use serde_json::{Value, json};

fn text(max: usize) -> impl Strategy<Value = String> {
    // Chinese, ASCII and the characters XML must escape; no leading or trailing blanks.
    proptest::string::string_regex(&format!(
        "[一-龥a-zA-Z0-9<>&\"'，。][一-龥a-zA-Z0-9<>&\"'，。 ]{{0,{}}}[一-龥a-zA-Z0-9]",
        max - 2
    ))
    .expect("valid regex")
}

fn canonical_dispatch() -> impl Strategy<Value = Value> {
    let kinds = prop::sample::select(vec![
        "consultation",
        "complaint",
        "suggestion",
        "help",
        "report",
        "praise",
    ]);
    let urgency = prop::sample::select(vec!["normal", "urgent"]);
    (
        (kinds, urgency, any::<bool>(), "[张王李赵刘陈][一-龥]{1,3}", "1[3-9][0-9]{9}", "[1-6][0-9]{5}"),
        (text(60), text(800), prop::option::of(text(100)), prop::option::of("[0-9]{1,2}\\.[0-9]{1,2}")),
        (prop::collection::vec(text(30), 0..3), 946_684_800i64..4_102_444_800i64, "[A-Z]{2}[0-9]{8}"),
    )
        .prop_map(|((kind, urgency, confidential, name, phone, region), (title, content, address, class), (units, secs, number))| {
            let t = chrono::DateTime::from_timestamp(secs, 0)
                .unwrap()
                .with_timezone(&contract_tests::samples::beijing());
            let mut ticket = json!({
                "id": "019ab2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", "origin": "12348", "external_id": number,
                "partner_number": format!("P{number}"),
                "kind": kind, "urgency": urgency, "confidential": confidential,
                "caller": {"name": name, "phone": phone},
                "region_code": region, "title": title, "content": content,
                "received_at": t.to_rfc3339(), "units": units,
            });
            if let Some(a) = address { ticket["address"] = a.into(); }
            if let Some(c) = class { ticket["classification_code"] = c.into(); }
            json!({"message": {"id": "m-1", "type": "dispatch"}, "ticket": ticket, "event": {"kind": "dispatch"}})
        })
}

fn lookup<'v>(v: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(v, |at, k| at.get(k))
}

fn partners() -> Vec<(Mapping, std::path::PathBuf)> {
    partner_dirs()
        .into_iter()
        .map(|d| (load_folder(&d).unwrap_or_else(|e| panic!("{e}")).0, d))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_dispatch_survives_every_partner(doc in canonical_dispatch()) {
        for (m, dir) in partners() {
            if !m.supports("dispatch") { continue; }
            let (wire, warnings) = m.encode("dispatch", &doc, false)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", m.partner)))?;
            prop_assert!(warnings.is_empty(), "{}: {:?}", m.partner, warnings);
            let back = m.decode_sent(&wire).map_err(|e| TestCaseError::fail(format!("{}: {e}", m.partner)))?;
            let back = Value::from(back.doc);
            for field in m.canonical_fields("dispatch") {
                let sent = lookup(&doc, field).filter(|v| !v.is_null() && *v != &json!([]));
                if field == "message.id" { continue; }
                prop_assert_eq!(sent, lookup(&back, field), "{} lost or changed `{}`", m.partner, field);
            }
            if let Some(xsd) = m.schema_file(&dir) {
                xsd::validate(&xsd, &wire).map_err(|e| TestCaseError::fail(format!("{}: {e}", m.partner)))?;
            }
        }
    }
}

#[test]
fn every_shipped_xml_sample_is_valid_against_its_schema() {
    let mut validated = 0;
    for (m, dir) in partners() {
        let Some(xsd) = m.schema_file(&dir) else {
            continue;
        };
        for entry in std::fs::read_dir(dir.join("samples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "xml") {
                xsd::validate(&xsd, &std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                validated += 1;
            }
        }
    }
    assert!(validated >= 14, "{validated}");
    assert!(mappings_dir().join("canonical").exists());
}

#[test]
fn the_schema_refuses_what_12345_would_refuse() {
    let dir = mappings_dir().join("12345");
    let (m, _) = load_folder(&dir).unwrap();
    let xsd = m.schema_file(&dir).unwrap();
    let good = std::fs::read_to_string(dir.join("samples/dispatch.sent.xml")).unwrap();
    assert!(xsd::validate(&xsd, good.as_bytes()).is_ok());
    for bad in [
        good.replace("<SQLX>2</SQLX>", "<SQLX>9</SQLX>"),
        good.replace("<XZQH>370102</XZQH>", "<XZQH>37010</XZQH>"),
        good.replace("<BT>拖欠工资投诉</BT>", ""),
        good.replace("<LDSJ>20261123095812</LDSJ>", "<LDSJ>2026-11-23</LDSJ>"),
    ] {
        assert!(xsd::validate(&xsd, bad.as_bytes()).is_err(), "{bad}");
    }
}
