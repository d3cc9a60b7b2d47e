//! Translation speed, one core: a 12345 XML ticket decoded to canonical and encoded as 12315
//! JSON (the relay's two translations), and a GB18030 12333 XML ticket both ways.
//! Target: ≥ 100,000 tickets/s per core for 12345 → 12315. Run: `cargo bench -p contract-tests`.

use std::hint::black_box;

use contract_tests::golden::mappings_dir;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline_adapters::mapping::{Mapping, outbound_document};
use hotline_adapters::{Inbound, OutboundMessage};
use hotline_model::{Event, EventBody, Ticket};

/// The gateway's own allocator (see `gateway/src/main.rs`), so the figures are the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load(partner: &str) -> Mapping {
    Mapping::load(&mappings_dir().join(partner)).expect("shipped mapping loads")
}

fn translate(c: &mut Criterion) {
    let (m12345, m12315, m12333) = (load("12345"), load("12315"), load("12333"));
    let xml = std::fs::read(mappings_dir().join("12345/samples/dispatch.xml")).expect("sample");
    let gb = std::fs::read(mappings_dir().join("12333/samples/dispatch.xml")).expect("sample");

    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    // The gateway's own path: partner wire → typed ticket → stored ticket → outbound canonical
    // document → the other partner's wire.
    g.bench_function("12345 XML -> canonical -> 12315 JSON", |b| {
        b.iter(|| {
            let t = m12345.decode(black_box(&xml)).expect("decodes");
            let Inbound::Ticket {
                partner_number,
                draft,
                ..
            } = m12345.into_inbound(t).expect("valid")
            else {
                unreachable!("a dispatch is a ticket")
            };
            let ticket = Ticket::new("12345", Some(partner_number), *draft);
            let event = Event::new(
                ticket.id,
                "12345",
                EventBody::Dispatch {
                    units: vec![],
                    note: None,
                },
            );
            let msg = OutboundMessage {
                message_id: uuid::Uuid::now_v7(),
                ticket,
                event,
            };
            let doc = outbound_document(&msg, "12315");
            let (json, _) = m12315.encode("dispatch", &doc, false).expect("encodes");
            black_box(json)
        })
    });
    g.bench_function("12333 GB18030 XML -> canonical -> 12333 GB18030 XML", |b| {
        b.iter(|| {
            let t = m12333.decode(black_box(&gb)).expect("decodes");
            let (xml, _) = m12333.encode("dispatch", &t.doc, false).expect("encodes");
            black_box(xml)
        })
    });
    g.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
