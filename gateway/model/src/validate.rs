//! Business validation of canonical data, beyond what the type system already guarantees.
//!
//! Every problem names the field (a dotted path) and the reason, so that whoever sent the data can
//! fix all of it at once (一次性告知).

use serde::Serialize;
use utoipa::ToSchema;

use crate::{Caller, TicketDraft};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `caller.phone`.
    pub field: String,
    /// Why the value was refused.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Upper bounds on free-text fields, in characters.
pub const MAX_TITLE: usize = 200;
pub const MAX_CONTENT: usize = 8000;
/// Most lines of a consultation transcript.
pub const MAX_TRANSCRIPT_LINES: usize = 500;
pub const MAX_SHORT: usize = 500;

impl TicketDraft {
    /// The problems with this draft where it sits at `prefix` of a larger document: fields are
    /// named `prefix.caller.phone` and so on.
    pub fn problems_at(&self, prefix: &str) -> Vec<FieldError> {
        self.problems()
            .into_iter()
            .map(|p| FieldError {
                field: format!("{prefix}.{}", p.field),
                reason: p.reason,
            })
            .collect()
    }

    /// All problems with this draft; empty when it is acceptable.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        caller_problems(&self.caller, "caller", &mut out);
        if !is_region_code(&self.region_code) {
            out.push(FieldError::new(
                "region_code",
                "must be a 6-digit GB/T 2260 administrative division code",
            ));
        }
        required_text(&self.title, &"title", MAX_TITLE, &mut out);
        required_text(&self.content, &"content", MAX_CONTENT, &mut out);
        optional_text(self.address.as_deref(), &"address", MAX_SHORT, &mut out);
        optional_text(self.remarks.as_deref(), &"remarks", MAX_CONTENT, &mut out);
        if let Some(code) = &self.classification_code
            && (code.is_empty()
                || code.len() > 32
                || !code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            out.push(FieldError::new(
                "classification_code",
                "must be 1-32 characters of letters, digits, '.' or '-'",
            ));
        }
        for (i, unit) in self.units.iter().enumerate() {
            required_text(unit, &format_args!("units[{i}]"), MAX_SHORT, &mut out);
        }
        optional_text(self.channel.as_deref(), &"channel", MAX_SHORT, &mut out);
        if self.transcript.len() > MAX_TRANSCRIPT_LINES {
            out.push(FieldError::new(
                "transcript",
                format!("must have at most {MAX_TRANSCRIPT_LINES} lines"),
            ));
        }
        for (i, line) in self.transcript.iter().enumerate() {
            optional_text(
                Some(line),
                &format_args!("transcript[{i}]"),
                MAX_CONTENT,
                &mut out,
            );
        }
        out
    }
}

fn caller_problems(caller: &Caller, prefix: &str, out: &mut Vec<FieldError>) {
    required_text(&caller.name, &format_args!("{prefix}.name"), 100, out);
    if !is_phone(&caller.phone) {
        out.push(FieldError::new(
            format!("{prefix}.phone"),
            "must be an 11-digit mobile number (1[3-9]xxxxxxxxx) or a landline number with area code",
        ));
    }
    if let Some(id) = &caller.id_number
        && let Err(reason) = check_id_number(id)
    {
        out.push(FieldError::new(format!("{prefix}.id_number"), reason));
    }
}

/// A field's name is written out only for a problem: most drafts have none.
type FieldName<'a> = &'a dyn std::fmt::Display;

fn required_text(value: &str, field: FieldName<'_>, max: usize, out: &mut Vec<FieldError>) {
    if value.trim().is_empty() {
        out.push(FieldError::new(field.to_string(), "must not be empty"));
    } else {
        optional_text(Some(value), field, max, out);
    }
}

fn optional_text(value: Option<&str>, field: FieldName<'_>, max: usize, out: &mut Vec<FieldError>) {
    if let Some(n) = value.and_then(|v| chars_over(v, max)) {
        out.push(FieldError::new(
            field.to_string(),
            format!("is {n} characters long; at most {max} are allowed"),
        ));
    }
}

/// How many characters `s` has, when that is more than `max`. Text no longer in bytes than
/// `max` is not counted: it cannot have more characters than bytes.
pub fn chars_over(s: &str, max: usize) -> Option<usize> {
    if s.len() <= max {
        return None;
    }
    Some(s.chars().count()).filter(|&n| n > max)
}

/// A 6-digit administrative division code that is not all zeros.
pub fn is_region_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) && s != "000000"
}

/// A Chinese mobile number (11 digits starting 1[3-9]), optionally with +86/86 prefix, or a
/// landline with area code (0 + 2-3 digits, optional dash, 7-8 digits, optional extension).
pub fn is_phone(s: &str) -> bool {
    let s = s
        .strip_prefix("+86")
        .or_else(|| s.strip_prefix("86"))
        .unwrap_or(s);
    let b = s.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && all_digits(b);
    if mobile {
        return true;
    }
    let (main, ext) = match s.split_once('#') {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    if ext.is_some_and(|e| e.is_empty() || e.len() > 6 || !all_digits(e.as_bytes())) {
        return false;
    }
    let digits: String = main.chars().filter(|c| *c != '-').collect();
    main.matches('-').count() <= 1
        && main.starts_with('0')
        && (10..=12).contains(&digits.len())
        && all_digits(digits.as_bytes())
}

fn all_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

/// Checks an 18-character resident identity number: format, birth date and the ISO 7064
/// MOD 11-2 check character (GB 11643).
pub fn check_id_number(id: &str) -> Result<(), String> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 {
        return Err(format!("must be 18 characters, got {}", id.chars().count()));
    }
    if !all_digits(&b[..17]) || !(b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x') {
        return Err("must be 17 digits followed by a digit or X".into());
    }
    let birth = &id[6..14];
    if chrono::NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() {
        // Never echo personal data (the birth date) in an error that may be logged.
        return Err("contains an invalid birth date".into());
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if b[17].to_ascii_uppercase() != expected {
        return Err("check character is wrong".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TicketKind, Urgency};

    fn draft() -> TicketDraft {
        TicketDraft {
            kind: TicketKind::Consultation,
            urgency: Urgency::Normal,
            caller: Caller {
                name: "张三".into(),
                phone: "13800138000".into(),
                id_number: Some("11010519491231002X".into()),
            },
            confidential: false,
            region_code: "370102".into(),
            address: None,
            classification_code: Some("9.1.2".into()),
            title: "劳动合同咨询".into(),
            content: "单位未签劳动合同，如何维权？".into(),
            remarks: None,
            received_at: "2026-11-23T09:00:00+08:00".parse().unwrap(),
            units: vec![],
            channel: None,
            transcript: Vec::new(),
        }
    }

    #[test]
    fn a_good_draft_has_no_problems() {
        assert_eq!(draft().problems(), vec![]);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut d = draft();
        d.caller.phone = "12345".into();
        d.caller.id_number = Some("110105194912310021".into());
        d.region_code = "37010".into();
        d.title = " ".into();
        d.units = vec!["".into()];
        let fields: Vec<_> = d.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "caller.phone",
                "caller.id_number",
                "region_code",
                "title",
                "units[0]"
            ]
        );
    }

    #[test]
    fn length_limits_count_characters_not_bytes() {
        // Six characters, eighteen bytes: over a limit of five, within a limit of six.
        assert_eq!(chars_over("法律援助中心", 5), Some(6));
        assert_eq!(chars_over("法律援助中心", 6), None);
        assert_eq!(chars_over("abcde", 5), None);
        assert_eq!(chars_over("abcdef", 5), Some(6));
        assert_eq!(chars_over("", 0), None);
    }

    #[test]
    fn phone_formats() {
        for ok in [
            "13800138000",
            "+8613800138000",
            "0531-86061234",
            "053186061234",
            "010-12345678#123",
        ] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in [
            "12800138000",
            "1380013800",
            "abc",
            "531-86061234",
            "0531--8606123",
            "",
        ] {
            assert!(!is_phone(bad), "{bad}");
        }
    }

    #[test]
    fn id_number_checksum_and_birth_date() {
        assert!(check_id_number("11010519491231002X").is_ok());
        assert!(check_id_number("11010519491231002x").is_ok());
        assert!(
            check_id_number("110105194912310021")
                .unwrap_err()
                .contains("check")
        );
        assert!(
            check_id_number("110105194913310020")
                .unwrap_err()
                .contains("birth")
        );
        assert!(check_id_number("1101051949").is_err());
        // Errors may be logged: they never repeat any part of the number.
        for bad in ["110105194912310021", "110105194913310020", "1101051949"] {
            let e = check_id_number(bad).unwrap_err();
            assert!(!e.contains("1949") && !e.contains("110105"), "{e}");
        }
    }
}
