//! Masking of callers' personal data (name, phone, identity number, address) for everyone who
//! may not see it: dashboard viewers and operators, and wire payloads shown to them.

use hotline_model::{Caller, Ticket};

/// Keeps `keep_start` leading and `keep_end` trailing characters and stars the rest. A value
/// too short to keep anything is starred completely.
fn stars(s: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= keep_start + keep_end {
        return "*".repeat(chars.len().max(1));
    }
    let hidden = chars.len() - keep_start - keep_end;
    chars[..keep_start]
        .iter()
        .chain(std::iter::repeat_n(&'*', hidden))
        .chain(&chars[chars.len() - keep_end..])
        .collect()
}

/// `张三丰` → `张**`.
pub fn name(s: &str) -> String {
    stars(s, 1, 0)
}

/// `13812345678` → `138****5678`; a landline keeps its last four digits.
pub fn phone(s: &str) -> String {
    if s.chars().count() == 11 && s.starts_with('1') {
        stars(s, 3, 4)
    } else {
        stars(s, 0, 4)
    }
}

/// `11010119900307001X` → `110***********001X`.
pub fn id_number(s: &str) -> String {
    stars(s, 3, 4)
}

/// Keeps the first six characters (the district), stars the rest.
pub fn address(s: &str) -> String {
    stars(s, 6, 0)
}

/// Free text from outside (a partner's error answer) made fit for logs: every run of seven or
/// more digits (phone and ID numbers, with an ID's trailing `X`) keeps its last two characters
/// only. Names and addresses cannot be told apart in free text; callers' fields never reach the
/// logs themselves.
pub fn digits_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().filter(char::is_ascii_digit).count() >= 7 {
            out.push_str(&stars(run, 0, 2));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (matches!(c, 'X' | 'x') && !run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

pub fn caller(c: &Caller) -> Caller {
    Caller {
        name: name(&c.name),
        phone: phone(&c.phone),
        id_number: c.id_number.as_deref().map(id_number),
    }
}

/// The ticket with its caller's personal data masked.
pub fn ticket(t: &Ticket) -> Ticket {
    let mut t = t.clone();
    t.draft.caller = caller(&t.draft.caller);
    t.draft.address = t.draft.address.as_deref().map(address);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_free_text_are_starred() {
        assert_eq!(
            digits_in("HTTP 400: 电话 13912345678 无效, id=11010519491231002X"),
            "HTTP 400: 电话 *********78 无效, id=****************2X"
        );
        assert_eq!(
            digits_in("HTTP 503 after 2026 ms"),
            "HTTP 503 after 2026 ms"
        );
        assert_eq!(digits_in(""), "");
    }

    #[test]
    fn masks_keep_only_what_identifies_nobody() {
        assert_eq!(name("张三丰"), "张**");
        assert_eq!(name("李"), "*");
        assert_eq!(phone("13812345678"), "138****5678");
        assert_eq!(phone("0531-86001234"), "*********1234");
        assert_eq!(id_number("11010119900307001X"), "110***********001X");
        assert_eq!(address("济南市历下区泉城路1号"), "济南市历下区*****");
        assert_eq!(phone(""), "*");
    }

    #[test]
    fn a_masked_ticket_shows_no_personal_data() {
        let draft = contract_tests::samples::random_draft();
        let t = Ticket::new("12348", Some("A-1".into()), draft);
        let m = ticket(&t);
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains(&t.draft.caller.phone));
        assert!(!json.contains(&t.draft.caller.name) || t.draft.caller.name.chars().count() == 1);
        if let Some(id) = &t.draft.caller.id_number {
            assert!(!json.contains(id.as_str()));
        }
        assert_eq!(m.draft.content, t.draft.content, "the matter itself stays");
    }
}
