//! Text encodings partners use on the wire: UTF-8, GB18030 and GBK. Strict both ways: bytes that
//! are not valid in the declared encoding are refused, never replaced.

use super::spec::Encoding;

impl Encoding {
    /// The label written in XML declarations and `Content-Type` charsets.
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Gb18030 => "GB18030",
            Self::Gbk => "GBK",
        }
    }

    fn codec(self) -> &'static encoding_rs::Encoding {
        match self {
            Self::Utf8 => encoding_rs::UTF_8,
            Self::Gb18030 => encoding_rs::GB18030,
            Self::Gbk => encoding_rs::GBK,
        }
    }

    /// Whether a declared label names this encoding (GBK-family labels are one family).
    pub fn accepts_label(self, label: &str) -> bool {
        let Some(declared) = encoding_rs::Encoding::for_label(label.trim().as_bytes()) else {
            return false;
        };
        match self {
            Self::Utf8 => declared == encoding_rs::UTF_8,
            Self::Gb18030 | Self::Gbk => {
                declared == encoding_rs::GB18030 || declared == encoding_rs::GBK
            }
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Result<String, String> {
        self.codec()
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|s| s.into_owned())
            .ok_or_else(|| format!("body is not valid {}", self.label()))
    }

    pub fn encode(self, text: &str) -> Result<Vec<u8>, String> {
        let (bytes, _, unmappable) = self.codec().encode(text);
        if unmappable {
            return Err(format!("text has characters {} cannot carry", self.label()));
        }
        Ok(bytes.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_round_trips_and_rejects_broken_bytes() {
        let text = "劳动争议 工资 12333";
        let bytes = Encoding::Gb18030.encode(text).unwrap();
        assert_ne!(bytes, text.as_bytes(), "not UTF-8 on the wire");
        assert_eq!(&bytes[..4], &[0xC0, 0xCD, 0xB6, 0xAF], "劳动 in GB18030");
        assert_eq!(Encoding::Gb18030.decode(&bytes).unwrap(), text);
        assert!(Encoding::Gb18030.decode(&[0x81]).is_err());
        assert!(
            Encoding::Utf8.decode(&bytes).is_err(),
            "GB18030 bytes are not UTF-8"
        );
    }

    #[test]
    fn labels() {
        assert!(Encoding::Gb18030.accepts_label("gbk"));
        assert!(Encoding::Gb18030.accepts_label("GB18030"));
        assert!(!Encoding::Gb18030.accepts_label("UTF-8"));
        assert!(Encoding::Utf8.accepts_label("utf-8"));
        assert!(!Encoding::Utf8.accepts_label("latin1"));
    }
}
