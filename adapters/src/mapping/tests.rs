use std::path::{Path, PathBuf};

use hotline_model::{Caller, EventBody, TicketKind, Urgency};

use super::*;
use crate::{Inbound, TicketRef};

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings")
}

fn m12345() -> Mapping {
    Mapping::load(&mappings_dir().join("12345")).unwrap()
}

fn sample(partner: &str, name: &str) -> Vec<u8> {
    std::fs::read(mappings_dir().join(partner).join("samples").join(name)).unwrap()
}

#[test]
fn a_12345_dispatch_decodes_into_a_canonical_ticket() {
    let m = m12345();
    let t = m.decode(&sample("12345", "dispatch.xml")).unwrap();
    assert_eq!(t.message_type, "dispatch");
    let v = serde_json::Value::from(t.doc.clone());
    assert_eq!(v["ticket"]["received_at"], "2026-11-23T09:30:15+08:00");
    assert_eq!(
        v["ticket"]["units"],
        serde_json::json!(["历下区人社局", "历下区法律援助中心"])
    );
    let Inbound::Ticket {
        message_id,
        partner_number,
        draft,
    } = m.into_inbound(t).unwrap()
    else {
        panic!("a dispatch is a ticket")
    };
    assert_eq!(message_id.as_deref(), Some("12345-MSG-20261123-0001"));
    assert_eq!(partner_number, "SD12345-2026112300017");
    assert_eq!(draft.kind, TicketKind::Help);
    assert_eq!(draft.urgency, Urgency::Urgent);
    assert!(!draft.confidential);
    assert_eq!(
        draft.caller,
        Caller {
            name: "王芳".into(),
            phone: "13953112345".into(),
            id_number: None
        }
    );
    assert_eq!(draft.region_code, "370102");
    assert_eq!(draft.classification_code.as_deref(), Some("9.3"));
}

#[test]
fn a_12345_reply_names_our_ticket() {
    let m = m12345();
    let inbound = m
        .into_inbound(m.decode(&sample("12345", "reply.xml")).unwrap())
        .unwrap();
    let Inbound::Event { ticket, body, .. } = inbound else {
        panic!("a reply is an event")
    };
    assert_eq!(
        ticket,
        TicketRef::Gateway("019ab2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".parse().unwrap())
    );
    assert!(
        matches!(body, EventBody::Reply { ref unit, .. } if unit.as_deref() == Some("历下区人社局"))
    );
}

/// `err` names `field`, for a reason that says `reason`.
fn assert_field_error(err: &TranslateError, field: &str, reason: &str) {
    let TranslateError::Field {
        field: f,
        reason: r,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(f, field, "{err}");
    assert!(r.contains(reason), "{err}");
}

#[test]
fn decoding_errors_name_the_partner_field() {
    let m = m12345();
    let xml = String::from_utf8(sample("12345", "dispatch.xml")).unwrap();
    let cases = [
        (
            xml.replace("<SQLX>4</SQLX>", "<SQLX>9</SQLX>"),
            "SQLX",
            "unknown code `9`",
        ),
        (
            xml.replace("<LDHM>13953112345</LDHM>", ""),
            "LDHM",
            "is required",
        ),
        (
            xml.replace("<LDHM>13953112345</LDHM>", "<LDHM>1234</LDHM>"),
            "LDHM",
            "mobile",
        ),
        (
            xml.replace("20261123093015", "2026-11-23"),
            "LDSJ",
            "does not match",
        ),
        (
            xml.replace("<XZQH>370102</XZQH>", "<XZQH>3701020</XZQH>"),
            "XZQH",
            "at most 6",
        ),
        (xml.replace("GD01", "ZZ99"), "XXLX", "not a message type"),
    ];
    for (doc, field, reason) in cases {
        let err = m
            .decode(doc.as_bytes())
            .and_then(|t| m.into_inbound(t))
            .unwrap_err();
        assert_field_error(&err, field, reason);
    }
    let err = m.decode(b"<GDXX><XXLX>GD01</XXLX>").unwrap_err();
    assert!(matches!(err, TranslateError::Malformed(_)), "{err}");
    let gbk = xml.replace("UTF-8", "GBK");
    assert!(
        matches!(m.decode(gbk.as_bytes()).unwrap_err(), TranslateError::Malformed(e) if e.contains("GBK"))
    );
}

#[test]
fn a_canonical_document_the_ticket_model_refuses_names_the_partner_field() {
    // What the mapping let through but the typed ticket does not take (a hand-made canonical
    // document: the shipped mappings catch these first) is named by the partner's field.
    let m = m12345();
    let t = m.decode(&sample("12345", "dispatch.xml")).unwrap();
    let cases = [
        (&["ticket", "title"][..], None, "BT", "is required"),
        (
            &["ticket", "caller", "name"][..],
            Some(serde_json::json!(5)),
            "LDRXM",
            "string",
        ),
        (
            &["ticket", "received_at"][..],
            Some(serde_json::json!("noon")),
            "LDSJ",
            "input",
        ),
    ];
    for (path, value, field, reason) in cases {
        let mut bad = t.clone();
        let mut doc = serde_json::Value::from(bad.doc);
        let (last, parents) = path.split_last().unwrap();
        let parent = parents
            .iter()
            .fold(&mut doc, |v, k| v.get_mut(*k).unwrap())
            .as_object_mut()
            .unwrap();
        match value {
            Some(v) => parent.insert((*last).to_owned(), v),
            None => parent.remove(*last),
        };
        bad.doc = doc.into();
        assert_field_error(&m.into_inbound(bad).unwrap_err(), field, reason);
    }
    assert!(m.into_inbound(t).is_ok());
}

#[test]
fn canonical_to_12345_and_back_keeps_every_field() {
    let m = m12345();
    let t = m.decode(&sample("12345", "dispatch.xml")).unwrap();
    let (wire, warnings) = m.encode("dispatch", &t.doc, false).unwrap();
    assert!(warnings.is_empty());
    let again = m.decode(&wire).unwrap();
    assert_eq!(again.doc, t.doc);
    let text = String::from_utf8(wire).unwrap();
    assert!(
        text.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><GDXX><XXLX>GD01</XXLX>"#),
        "{text}"
    );
    assert!(
        text.contains("<SJDW><DW>历下区人社局</DW><DW>历下区法律援助中心</DW></SJDW>"),
        "{text}"
    );
}

#[test]
fn a_confidential_ticket_leaves_personal_fields_out() {
    let m = m12345();
    let mut doc = serde_json::Value::from(m.decode(&sample("12345", "dispatch.xml")).unwrap().doc);
    doc["ticket"]["confidential"] = true.into();
    let (wire, _) = m.encode("dispatch", &doc, true).unwrap();
    let text = String::from_utf8(wire).unwrap();
    assert!(
        !text.contains("13953112345") && !text.contains("王芳"),
        "{text}"
    );
    assert!(text.contains("<SFBM>1</SFBM>"));
}

#[test]
fn unmapped_values_and_unsupported_types_are_clear_errors() {
    let m = m12345();
    let mut doc = serde_json::Value::from(m.decode(&sample("12345", "dispatch.xml")).unwrap().doc);
    doc["ticket"]["kind"] = "gossip".into();
    let err = m.encode("dispatch", &doc, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`ticket.kind`: `gossip` has no code in partner 12345's table `kind`"
    );
    assert_eq!(
        m.encode("withdraw", &doc, false).unwrap_err(),
        TranslateError::Unsupported("withdraw".into())
    );
}

#[test]
fn mapping_problems_are_reported_with_file_and_line() {
    let text = r#"partner = "x"
version = "1"
format = "xml"
type_field = "T"
time_format = "%Q%Y"

[codes.k]
a = "1"
b = "1"

[messages.dispatch]
code = "D"
field = [
  { path = "A", canonical = "ticket.nonsense" },
  { path = "B", canonical = "ticket.kind", codes = "missing" },
]

[messages.teleport]
code = "T"
root = "T"
"#;
    let problems = Mapping::from_toml(text, Path::new("m.toml")).unwrap_err().0;
    let got: Vec<(String, Option<usize>)> =
        problems.iter().map(|p| (p.key.clone(), p.line)).collect();
    assert_eq!(
        got,
        vec![
            ("time_format".into(), Some(5)),
            ("codes.k.b".into(), Some(9)),
            ("messages.dispatch".into(), Some(11)),
            ("messages.dispatch.field[0].canonical".into(), Some(14)),
            ("messages.dispatch.field[1].codes".into(), Some(15)),
            ("messages.teleport".into(), Some(18)),
        ],
        "{problems:#?}"
    );
}

fn m12315() -> Mapping {
    Mapping::load(&mappings_dir().join("12315")).unwrap()
}

#[test]
fn a_12315_dispatch_joins_the_address_and_reads_epoch_millis() {
    let m = m12315();
    let t = m.decode(&sample("12315", "dispatch.json")).unwrap();
    let v = serde_json::Value::from(t.doc.clone());
    assert_eq!(v["ticket"]["address"], "山东省济南市历下区泉城路某电器商场");
    assert_eq!(v["ticket"]["received_at"], "2025-11-23T09:30:00+08:00");
    assert_eq!(v["ticket"]["confidential"], false);
    let Inbound::Ticket {
        draft,
        partner_number,
        ..
    } = m.into_inbound(t.clone()).unwrap()
    else {
        panic!("a ticket")
    };
    assert_eq!(partner_number, "1237010220261123000456");
    assert_eq!(draft.kind, TicketKind::Complaint);
    assert_eq!(draft.units, vec!["历下区市场监管局".to_owned()]);

    // Encoding writes typed JSON: numbers as numbers, the address into `detail`.
    let (wire, _) = m.encode("dispatch", &t.doc, false).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&wire).unwrap();
    assert_eq!(v["msgType"], 1001);
    assert_eq!(v["appealType"], 1);
    assert_eq!(v["acceptTime"], 1763861400000i64);
    assert_eq!(v["secret"], false);
    assert_eq!(v["address"]["detail"], "山东省济南市历下区泉城路某电器商场");
}

#[test]
fn every_shipped_mapping_and_profile_loads() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(mappings_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("mapping.toml").exists() {
            let (m, _) = crate::mapped::load_folder(&dir).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Some(m.partner.as_str()),
                dir.file_name().and_then(|n| n.to_str())
            );
            loaded += 1;
        }
    }
    assert!(loaded >= 2, "{loaded}");
}

#[test]
fn over_long_values_are_cut_and_flagged_or_refused_as_each_partner_declares() {
    let mut doc = serde_json::Value::from(
        m12345()
            .decode(&sample("12345", "dispatch.xml"))
            .unwrap()
            .doc,
    );
    doc["ticket"]["title"] = "长".repeat(150).into();
    // 12333 declares `overflow = "truncate"`: cut to 100 characters, with a warning.
    let m = Mapping::load(&mappings_dir().join("12333")).unwrap();
    let (wire, warnings) = m.encode("dispatch", &doc, false).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("ticket.title") && warnings[0].contains("150 to 100"),
        "{warnings:?}"
    );
    let back = m.decode_sent(&wire).unwrap();
    assert_eq!(
        back.doc
            .at(&["ticket".to_owned(), "title".to_owned()])
            .and_then(crate::mapping::doc::Doc::as_str)
            .unwrap()
            .chars()
            .count(),
        100
    );
    // 12345 declares `overflow = "reject"`: refused, naming the field and the limit.
    let err = m12345().encode("dispatch", &doc, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`ticket.title`: is 150 characters; partner 12345 takes at most 100"
    );
}

/// An outbound message read field by field gives, on every canonical field a mapping may name,
/// exactly what the whole document gives: for a ticket with every optional field and one with
/// none, with and without the partner's number, and a few kinds of event.
#[test]
fn an_outbound_message_reads_field_by_field_as_its_whole_document() {
    let t = m12345().decode(&sample("12345", "dispatch.xml")).unwrap();
    let Inbound::Ticket { draft, .. } = m12345().into_inbound(t).unwrap() else {
        panic!("a dispatch is a ticket")
    };
    let mut full = hotline_model::Ticket::new("12345", Some("SD-1".into()), *draft);
    full.draft.caller.id_number = Some("370102198001011234".into());
    full.draft.address = Some("历下区".into());
    full.draft.classification_code = Some("0301".into());
    full.draft.remarks = Some("备注".into());
    full.draft.channel = Some("phone".into());
    full.draft.transcript = vec!["你好".into(), "请问".into()];
    full.draft.confidential = true;
    full.draft.urgency = Urgency::Urgent;
    full.partner_numbers.insert("12315".into(), "P-9".into());
    assert!(!full.draft.units.is_empty(), "the sample names units");
    let mut sparse = full.clone();
    sparse.external_id = None;
    sparse.partner_numbers.clear();
    sparse.draft.caller.id_number = None;
    sparse.draft.address = None;
    sparse.draft.classification_code = None;
    sparse.draft.remarks = None;
    sparse.draft.channel = None;
    sparse.draft.units.clear();
    sparse.draft.transcript.clear();
    sparse.draft.confidential = false;
    let bodies = [
        EventBody::Dispatch {
            units: vec!["某单位".into()],
            note: Some("请办理".into()),
        },
        EventBody::Return {
            reason: "不属于本单位".into(),
        },
        EventBody::Receipt {
            partner_number: None,
            unit: None,
        },
    ];
    let mut compared = 0;
    for ticket in [&full, &sparse] {
        for body in &bodies {
            let msg = crate::OutboundMessage {
                message_id: uuid::Uuid::now_v7(),
                ticket: ticket.clone(),
                event: hotline_model::Event::new(ticket.id, "12348", body.clone()),
            };
            for partner in ["12315", "12333"] {
                let doc = outbound_document(&msg, partner);
                let whole = doc.to_value();
                for field in CANONICAL_FIELDS {
                    let path: Vec<String> = field.split('.').map(str::to_owned).collect();
                    let one = Canonical::get(&doc, &path).map(std::borrow::Cow::into_owned);
                    let from_whole = Canonical::get(&whole, &path).map(|v| v.into_owned());
                    assert_eq!(one, from_whole, "{field} for {partner}");
                    compared += usize::from(one.is_some());
                }
            }
        }
    }
    // Both tickets carry most fields; a test that compared only absences would prove nothing.
    assert!(compared > 150, "{compared} present values compared");
}
