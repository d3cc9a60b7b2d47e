//! Canonical sample data shared by tests, the demo and the benchmarks.

use hotline_model::{Caller, TicketDraft, TicketKind, Urgency};
use rand::Rng;
use rand::seq::IndexedRandom;

const SURNAMES: &[&str] = &["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"];
const GIVEN: &[&str] = &["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军"];
const REGIONS: &[&str] = &[
    "370102", "370103", "370202", "370602", "520102", "420102", "511702",
];
const MATTERS: &[(TicketKind, &str, &str, &str)] = &[
    (
        TicketKind::Consultation,
        "9.1",
        "劳动合同纠纷咨询",
        "单位未与本人签订书面劳动合同，已工作八个月，想了解能否主张双倍工资。",
    ),
    (
        TicketKind::Help,
        "9.3",
        "农民工讨薪求助",
        "在建筑工地务工，包工头拖欠三个月工资共计两万余元，多次催要未果。",
    ),
    (
        TicketKind::Complaint,
        "3.2",
        "消费合同纠纷投诉",
        "网购家电存在质量问题，商家拒绝按约定退换货。",
    ),
    (
        TicketKind::Consultation,
        "2.1",
        "婚姻家庭纠纷咨询",
        "离婚时子女抚养权和共同财产如何分割，需要准备哪些材料。",
    ),
    (
        TicketKind::Suggestion,
        "0.1",
        "法律援助服务建议",
        "建议在乡镇增设法律援助工作站，方便老年人就近咨询。",
    ),
];

/// A valid, realistic ticket draft with random data.
pub fn random_draft() -> TicketDraft {
    let mut rng = rand::rng();
    let (kind, class, title, content) = MATTERS.choose(&mut rng).copied().unwrap_or(MATTERS[0]);
    let name = format!(
        "{}{}",
        SURNAMES.choose(&mut rng).unwrap_or(&"张"),
        GIVEN.choose(&mut rng).unwrap_or(&"伟")
    );
    TicketDraft {
        kind,
        urgency: if rng.random_ratio(1, 8) {
            Urgency::Urgent
        } else {
            Urgency::Normal
        },
        caller: Caller {
            name,
            phone: format!(
                "1{}{:09}",
                rng.random_range(3..=9),
                rng.random_range(0..1_000_000_000u32)
            ),
            id_number: None,
        },
        confidential: rng.random_ratio(1, 10),
        region_code: (*REGIONS.choose(&mut rng).unwrap_or(&"370102")).to_owned(),
        address: Some("历下区泉城路1号".into()),
        classification_code: Some(class.into()),
        title: title.into(),
        content: content.into(),
        remarks: None,
        received_at: chrono::Utc::now().with_timezone(&beijing()),
        units: Vec::new(),
        channel: None,
        transcript: Vec::new(),
    }
}

/// UTC+08:00, the time zone every partner in China uses.
pub fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}
