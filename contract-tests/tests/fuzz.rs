//! Hostile input against every partner decoder: random bytes, mutated real samples, and
//! pathological shapes (deep nesting, huge counts, entities). Nothing may panic; what cannot be
//! read is an error. Property-based (proptest) because cargo-fuzz needs a nightly toolchain these
//! machines do not have. A case it finds becomes a unit test beside the code it broke (e.g.
//! `a_declaration_quoted_oddly_has_no_encoding` in `adapters/src/mapping/xml.rs`).

use contract_tests::golden::partner_dirs;
use hotline_adapters::mapped::load_folder;
use hotline_adapters::mapping::Mapping;
use proptest::prelude::*;

fn mappings() -> Vec<(Mapping, Vec<Vec<u8>>)> {
    partner_dirs()
        .into_iter()
        .map(|d| {
            let m = load_folder(&d).unwrap_or_else(|e| panic!("{e}")).0;
            let samples = std::fs::read_dir(d.join("samples"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .filter_map(|p| std::fs::read(p).ok())
                        .collect()
                })
                .unwrap_or_default();
            (m, samples)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..32)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Flip(i, b) => bytes[i % len] ^= b | 1,
            Mutation::Cut(i) => bytes.truncate(i % len),
            Mutation::Insert(i, v) => {
                let at = i % len;
                bytes.splice(at..at, v.iter().copied());
            }
            Mutation::Duplicate(i, n) => {
                let at = i % len;
                let end = (at + n).min(len);
                let chunk = bytes[at..end].to_vec();
                bytes.splice(at..at, chunk);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for (m, _) in mappings() {
            let _ = m.decode(&bytes);
            let _ = m.decode_sent(&bytes);
        }
    }

    #[test]
    fn mutated_samples_never_panic_a_decoder(which in any::<usize>(), ms in proptest::collection::vec(mutation(), 1..8)) {
        for (m, samples) in mappings() {
            if samples.is_empty() { continue; }
            let sample = samples[which % samples.len()].clone();
            let _ = m.decode(&apply(sample, &ms));
        }
    }
}

#[test]
fn pathological_shapes_are_refused_not_crashed() {
    for (m, _) in mappings() {
        for doc in [
            // Deep nesting, far beyond any partner message.
            format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000)).into_bytes(),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes(),
            // Entities and DTDs.
            br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>"#.to_vec(),
            // Very many elements.
            format!("<GDXX>{}</GDXX>", "<X>1</X>".repeat(200_000)).into_bytes(),
            // Mislabelled encodings.
            b"<?xml version=\"1.0\" encoding=\"GBK\"?><x>\xff\xfe\xfd</x>".to_vec(),
            vec![0xff; 4096],
        ] {
            let r = m.decode(&doc);
            assert!(r.is_err(), "{}: {} bytes of junk decoded", m.partner, doc.len());
        }
    }
}
