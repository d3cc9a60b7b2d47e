//! Small conversions between `std::time` and `chrono`.

/// A configured duration as a chrono span; one too long for chrono counts as forever.
pub fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
