//! Locating a dotted key (`partners.p1.url`, `messages.dispatch.field[3].codes`) in TOML text, so
//! that problems can be reported with their line.

/// Finds the line of a dotted key in the original text.
pub struct Locator {
    doc: Option<toml_edit::Document<String>>,
    line_starts: Vec<usize>,
}

impl Locator {
    pub fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            doc: toml_edit::Document::parse(text.to_owned()).ok(),
            line_starts,
        }
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// The line of the deepest part of `key` that is in the file.
    pub fn line(&self, key: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut item = doc.as_item();
        let mut span = None;
        'parts: for part in key.split('.').filter(|p| !p.is_empty()) {
            // `field[3]` is the key `field`, then the fourth table of that array.
            let mut pieces = part.split('[');
            let name = pieces.next().unwrap_or(part);
            let indices: Vec<usize> = pieces
                .filter_map(|p| p.trim_end_matches(']').parse().ok())
                .collect();
            let mut next = item.get(name);
            for n in indices {
                if let Some(found) = next {
                    if let Some(s) = found.span() {
                        span = Some(s);
                    }
                    next = found.get(n);
                }
            }
            let Some(found) = next else { break 'parts };
            item = found;
            span = found.span().or(span);
            if let Some(table) = found.as_table()
                && let Some(s) = table.span()
            {
                span = Some(s);
            }
        }
        span.map(|s| self.line_of(s.start))
    }
}
