//! Feed bytes → UTF-8 text: which character set a document is in, and decoding it.
//!
//! The labels feeds use are those of the WHATWG Encoding Standard (what
//! `encoding_rs` reads) and those of Python's codecs, in their usual
//! spellings (`windows_1251`, `cp1252`, `iso_8859_2`, `latin2`, `ibm850`,
//! `mac-cyrillic`, `utf_32`…). Decoders come from crates: `encoding_rs`
//! for the WHATWG set, `codepage` for Windows code-page numbers, `oem_cp`
//! for the DOS code pages, `mac-encoding` for the classic Mac OS sets.
//! UTF-32, which no maintained crate decodes on its own, is four bytes a
//! character and decoded here. EBCDIC is not read: no well-kept crate with
//! a permissive licence decodes it.
//!
//! A label that names nothing known, or bytes that are not what their label
//! says, are never decoded as windows-1252 by default: the bytes are sniffed
//! (byte-order mark, UTF-8 validity, then `chardetng`'s guess) and the guess
//! is logged.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// A character set gazette can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// An encoding of the WHATWG standard.
    Whatwg(&'static Encoding),
    /// A DOS (OEM) code page, by number.
    Dos(u16),
    /// A classic Mac OS character set not in the WHATWG standard.
    Mac(mac_encoding::Encoding),
    /// UTF-32, little-endian when true.
    Utf32 {
        /// Byte order.
        little_endian: bool,
    },
}

impl Charset {
    /// The name logs show.
    pub fn name(self) -> String {
        match self {
            Charset::Whatwg(e) => e.name().to_string(),
            Charset::Dos(cp) => format!("cp{cp}"),
            Charset::Mac(m) => format!("mac-{}", m.id()),
            Charset::Utf32 { little_endian } => {
                format!("UTF-32{}", if little_endian { "LE" } else { "BE" })
            }
        }
    }

    /// Whether ASCII bytes mean ASCII in this set (so an XML declaration
    /// written in ASCII can be trusted to name it).
    fn ascii_compatible(self) -> bool {
        match self {
            Charset::Whatwg(e) => e.is_ascii_compatible(),
            Charset::Dos(_) | Charset::Mac(_) => true,
            Charset::Utf32 { .. } => false,
        }
    }

    /// `bytes` decoded (without a byte-order mark); malformed sequences become U+FFFD.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Charset::Whatwg(e) => e.decode_without_bom_handling(bytes).0,
            Charset::Dos(cp) => match oem_cp::code_table::DECODING_TABLE_CP_MAP.get(&cp) {
                Some(table) => Cow::Owned(table.decode_string_lossy(bytes)),
                None => Cow::Owned(String::from_utf8_lossy(bytes).into_owned()),
            },
            Charset::Mac(m) => Cow::Owned(m.decode(bytes)),
            Charset::Utf32 { little_endian } => Cow::Owned(
                bytes
                    .chunks(4)
                    .map(|c| {
                        let mut b = [0u8; 4];
                        b[..c.len()].copy_from_slice(c);
                        let n = if little_endian {
                            u32::from_le_bytes(b)
                        } else {
                            u32::from_be_bytes(b)
                        };
                        char::from_u32(n).unwrap_or('\u{FFFD}')
                    })
                    .collect(),
            ),
        }
    }
}

/// The character set a label names, in WHATWG or Python spelling; `None`
/// when it names none that gazette knows.
pub fn for_label(label: &str) -> Option<Charset> {
    let label = label.trim().trim_matches(['"', '\'']).trim();
    if label.is_empty() || label.len() > 40 {
        return None;
    }
    let lower = label.to_ascii_lowercase();
    let whatwg = |l: &str| Encoding::for_label_no_replacement(l.as_bytes()).map(Charset::Whatwg);
    if let Some(c) = utf32(&lower) {
        return Some(c);
    }
    if let Some(c) = whatwg(&lower).or_else(|| whatwg(&lower.replace('_', "-"))) {
        return Some(c);
    }
    // Python's spellings: compare without separators.
    let key: String = lower
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .collect();
    if let Some(c) = whatwg(&key) {
        return Some(c);
    }
    if let Some(n) = key.strip_prefix("iso8859")
        && let Ok(n) = n.parse::<u8>()
    {
        return whatwg(&format!("iso-8859-{n}"));
    }
    let latin = |n: &str| -> Option<Charset> {
        let part = match n {
            "" | "1" => 1,
            "2" => 2,
            "3" => 3,
            "4" => 4,
            "5" => 9,
            "6" => 10,
            "7" => 13,
            "8" => 14,
            "9" => 15,
            "10" => 16,
            _ => return None,
        };
        whatwg(&format!("iso-8859-{part}"))
    };
    if let Some(n) = key.strip_prefix("latin") {
        return latin(n);
    }
    if let Some(n) = key.strip_prefix('l')
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return latin(n);
    }
    if let Some(c) = mac(&key) {
        return Some(c);
    }
    // Code pages by number: cp1251, windows1251, ms1251, ibm850, cp437, 850.
    let number = [
        "cp", "windows", "win", "ms", "ibm", "oem", "dos", "csibm", "codepage",
    ]
    .iter()
    .find_map(|p| key.strip_prefix(p))
    .unwrap_or(&key);
    if let Ok(n) = number.parse::<u16>() {
        if let Some(e) = codepage::to_encoding_no_replacement(n) {
            return Some(Charset::Whatwg(e));
        }
        if oem_cp::code_table::DECODING_TABLE_CP_MAP.contains_key(&n) {
            return Some(Charset::Dos(n));
        }
    }
    match key.as_str() {
        "u8" | "utf" | "utf8sig" | "cp65001" => Some(Charset::Whatwg(UTF_8)),
        "latin" | "8859" | "ascii" | "646" | "usascii" => latin("1"),
        "utf16" | "u16" => Some(Charset::Whatwg(UTF_16LE)),
        "sjis" | "mskanji" | "s_jis" | "shiftjis2004" | "sjis2004" => whatwg("shift_jis"),
        "eucjis2004" | "eucjisx0213" | "ujis" => whatwg("euc-jp"),
        "big5hkscs" | "hkscs" => whatwg("big5"),
        "uhc" | "ksc5601" | "ksx1001" => whatwg("euc-kr"),
        "936" | "chinese" => whatwg("gbk"),
        "koi8" => whatwg("koi8-r"),
        "ruscii" => Some(Charset::Dos(866)),
        _ => None,
    }
}

fn utf32(lower: &str) -> Option<Charset> {
    match lower.replace('_', "-").as_str() {
        "utf-32le" | "utf-32-le" | "utf32le" | "ucs-4le" => Some(Charset::Utf32 {
            little_endian: true,
        }),
        // Without a byte-order mark, UTF-32 is big-endian (Unicode, D99).
        "utf-32be" | "utf-32-be" | "utf32be" | "ucs-4be" | "utf-32" | "utf32" | "ucs-4"
        | "ucs4" | "u32" => Some(Charset::Utf32 {
            little_endian: false,
        }),
        _ => None,
    }
}

/// Python's Mac code-page names (`mac-greek`, `maclatin2`, `x-mac-turkish`…).
fn mac(key: &str) -> Option<Charset> {
    let name = key.strip_prefix("x").unwrap_or(key).strip_prefix("mac")?;
    let id = match name {
        "roman" | "intosh" | "" => return Some(Charset::Whatwg(encoding_rs::MACINTOSH)),
        "cyrillic" | "ukrainian" => return Some(Charset::Whatwg(encoding_rs::X_MAC_CYRILLIC)),
        "greek" => "greek",
        "iceland" | "icelandic" => "icelandic",
        "latin2" | "centeuro" | "ce" | "centraleurope" => "central-european",
        "turkish" => "turkish",
        "croatian" => "croatian",
        "romanian" => "romanian",
        "arabic" => "arabic",
        "farsi" => "farsi",
        "hebrew" => "hebrew",
        "thai" => "thai",
        "celtic" => "celtic",
        "gaelic" => "gaelic",
        _ => return None,
    };
    mac_encoding::Encoding::from_id(id).map(Charset::Mac)
}

/// Decodes a feed document to UTF-8.
///
/// Order: a byte-order mark (UTF-8, UTF-16, UTF-32); UTF-32 or UTF-16
/// without one (from how `<` is written); then the HTTP charset; then the
/// XML declaration; then UTF-8. A document that claims UTF-8 but is not
/// valid UTF-8 is read as its declared charset, else as `chardetng`
/// guesses. One that the server labels with a single-byte charset but
/// that is valid, non-ASCII UTF-8 and declares UTF-8 (or nothing) is read
/// as UTF-8 — the common misconfiguration. An unknown label is sniffed,
/// never assumed to be windows-1252.
pub fn decode<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Cow<'a, str> {
    if let Some((charset, bom_len)) = bom(bytes) {
        return charset.decode(&bytes[bom_len..]);
    }
    if let Some(charset) = by_first_char(bytes) {
        return charset.decode(bytes);
    }
    let http_label = content_type.and_then(charset_param);
    let http = http_label.as_deref().and_then(for_label);
    let declared_label = declared_label(bytes);
    let declared = declared_label.and_then(for_label).map(|c| match c {
        // A UTF-16/32 label on bytes that are not (we are reading ASCII) is a lie.
        Charset::Whatwg(e) if e == UTF_16LE || e == UTF_16BE => Charset::Whatwg(UTF_8),
        Charset::Utf32 { .. } => Charset::Whatwg(UTF_8),
        c => c,
    });
    let utf8 = std::str::from_utf8(bytes).ok();
    let unknown = [http_label.as_deref(), declared_label]
        .into_iter()
        .flatten()
        .find(|l| for_label(l).is_none());
    let charset = match http.or(declared) {
        Some(Charset::Whatwg(e)) if e == UTF_8 => match utf8 {
            Some(_) => Charset::Whatwg(UTF_8),
            None => declared
                .filter(|d| *d != Charset::Whatwg(UTF_8))
                .unwrap_or_else(|| sniff(bytes, "labelled UTF-8 but is not")),
        },
        Some(primary)
            if primary.ascii_compatible()
                && utf8.is_some()
                && !bytes.is_ascii()
                && declared.is_none_or(|d| d == Charset::Whatwg(UTF_8)) =>
        {
            Charset::Whatwg(UTF_8)
        }
        Some(primary) => primary,
        None => match (utf8, unknown) {
            (Some(_), _) => Charset::Whatwg(UTF_8),
            (None, Some(label)) => sniff(bytes, &format!("unknown charset {label:?}")),
            (None, None) => sniff(bytes, "no charset given and not UTF-8"),
        },
    };
    if let (Charset::Whatwg(e), Some(text)) = (charset, utf8)
        && e == UTF_8
    {
        return Cow::Borrowed(text);
    }
    charset.decode(bytes)
}

/// A byte-order mark: the charset and the mark's length.
fn bom(bytes: &[u8]) -> Option<(Charset, usize)> {
    if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return Some((
            Charset::Utf32 {
                little_endian: true,
            },
            4,
        ));
    }
    if bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Some((
            Charset::Utf32 {
                little_endian: false,
            },
            4,
        ));
    }
    Encoding::for_bom(bytes).map(|(e, len)| (Charset::Whatwg(e), len))
}

/// UTF-32 and UTF-16 without a byte-order mark, from the first `<`.
fn by_first_char(bytes: &[u8]) -> Option<Charset> {
    match bytes {
        [b'<', 0, 0, 0, ..] => Some(Charset::Utf32 {
            little_endian: true,
        }),
        [0, 0, 0, b'<', ..] => Some(Charset::Utf32 {
            little_endian: false,
        }),
        [b'<', 0, b'?' | b'r' | b'f' | b'R', 0, ..] => Some(Charset::Whatwg(UTF_16LE)),
        [0, b'<', 0, b'?' | b'r' | b'f' | b'R', ..] => Some(Charset::Whatwg(UTF_16BE)),
        _ => None,
    }
}

/// The detector's guess for bytes whose charset is not known; logged.
fn sniff(bytes: &[u8], why: &str) -> Charset {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let guess = detector.guess(None, chardetng::Utf8Detection::Allow);
    tracing::info!(reason = why, guess = guess.name(), "feed charset guessed");
    Charset::Whatwg(guess)
}

/// The `charset` parameter of a Content-Type header.
pub fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// The label in the XML declaration, as written.
fn declared_label(bytes: &[u8]) -> Option<&str> {
    let head = &bytes[..bytes.len().min(256)];
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &head[start..];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let i = decl.find("encoding")?;
    let rest = decl[i + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let label = rest[1..].split(quote).next()?.trim();
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document in `label`'s charset whose title is `text`, declared in the XML declaration.
    fn doc(label: &str, encoded_title: &[u8]) -> Vec<u8> {
        let mut d = format!("<?xml version=\"1.0\" encoding=\"{label}\"?><rss><channel><title>")
            .into_bytes();
        d.extend_from_slice(encoded_title);
        d.extend_from_slice(b"</title></channel></rss>");
        d
    }

    fn title_of(text: &str) -> &str {
        let start = text.find("<title>").unwrap() + 7;
        let end = text.find("</title>").unwrap();
        &text[start..end]
    }

    /// Label × text: each label in its usual spellings, each text encoded
    /// by an independent encoder (encoding_rs or the crate's own tables),
    /// decoded exactly.
    #[test]
    fn charset_matrix_decodes_exactly() {
        let whatwg = |e: &'static Encoding, t: &str| e.encode(t).0.into_owned();
        let cases: Vec<(&[&str], &str, Vec<u8>)> = vec![
            (
                &[
                    "windows-1251",
                    "windows_1251",
                    "cp1251",
                    "WINDOWS-1251",
                    "win1251",
                    "ms1251",
                ],
                "Права человека",
                whatwg(encoding_rs::WINDOWS_1251, "Права человека"),
            ),
            (
                &[
                    "cp1252",
                    "windows-1252",
                    "latin1",
                    "latin-1",
                    "iso_8859_1",
                    "ISO8859-1",
                    "l1",
                ],
                "Genève “quotes” €",
                whatwg(encoding_rs::WINDOWS_1252, "Genève “quotes” €"),
            ),
            (
                &[
                    "iso-8859-2",
                    "iso_8859_2",
                    "iso8859_2",
                    "latin2",
                    "l2",
                    "ISO-8859-2",
                ],
                "Łódź Žižkov",
                whatwg(encoding_rs::ISO_8859_2, "Łódź Žižkov"),
            ),
            (
                &["iso8859-15", "latin9", "iso_8859_15"],
                "Œuvre 10€",
                whatwg(encoding_rs::ISO_8859_15, "Œuvre 10€"),
            ),
            (
                &["koi8-r", "koi8_r", "KOI8R"],
                "Москва",
                whatwg(encoding_rs::KOI8_R, "Москва"),
            ),
            (
                &["koi8-u", "koi8_u"],
                "Київ",
                whatwg(encoding_rs::KOI8_U, "Київ"),
            ),
            (
                &["cp866", "ibm866", "866", "IBM866"],
                "Привет",
                whatwg(encoding_rs::IBM866, "Привет"),
            ),
            (
                &[
                    "mac-cyrillic",
                    "maccyrillic",
                    "x-mac-cyrillic",
                    "mac_cyrillic",
                ],
                "Привет",
                whatwg(encoding_rs::X_MAC_CYRILLIC, "Привет"),
            ),
            (
                &["mac-roman", "macroman", "macintosh", "x-mac-roman"],
                "Café ™",
                whatwg(encoding_rs::MACINTOSH, "Café ™"),
            ),
            (
                &["shift_jis", "sjis", "cp932", "ms_kanji"],
                "日本語",
                whatwg(encoding_rs::SHIFT_JIS, "日本語"),
            ),
            (
                &["gb2312", "gbk", "cp936", "GB_2312"],
                "中文",
                whatwg(encoding_rs::GBK, "中文"),
            ),
            (
                &["big5", "big5hkscs", "cp950"],
                "繁體",
                whatwg(encoding_rs::BIG5, "繁體"),
            ),
            (
                &["euc-kr", "euc_kr", "cp949", "ks_c_5601-1987"],
                "한국어",
                whatwg(encoding_rs::EUC_KR, "한국어"),
            ),
            (
                &["euc_jp", "euc-jp", "ujis"],
                "日本語",
                whatwg(encoding_rs::EUC_JP, "日本語"),
            ),
            (
                &["windows-1256", "cp1256"],
                "حقوق",
                whatwg(encoding_rs::WINDOWS_1256, "حقوق"),
            ),
            (
                &["iso-8859-7", "greek", "iso_8859_7"],
                "Ελλάδα",
                whatwg(encoding_rs::ISO_8859_7, "Ελλάδα"),
            ),
            (
                &["cp437", "ibm437", "437"],
                "Ç½°",
                oem_cp::encode_string_lossy("Ç½°", &oem_cp::code_table::ENCODING_TABLE_CP437),
            ),
            (
                &["cp850", "ibm850", "850"],
                "Genève Ø",
                oem_cp::encode_string_lossy("Genève Ø", &oem_cp::code_table::ENCODING_TABLE_CP850),
            ),
            (
                &["cp852", "ibm852"],
                "Łódź",
                oem_cp::encode_string_lossy("Łódź", &oem_cp::code_table::ENCODING_TABLE_CP852),
            ),
            (
                &["mac-greek", "macgreek"],
                "Ελλάδα",
                mac_encoding::Encoding::from_id("greek")
                    .unwrap()
                    .encode("Ελλάδα")
                    .unwrap(),
            ),
            (
                &["mac-latin2", "maccentraleurope", "mac_centeuro"],
                "Łódź",
                mac_encoding::Encoding::from_id("central-european")
                    .unwrap()
                    .encode("Łódź")
                    .unwrap(),
            ),
            (
                &["mac-turkish"],
                "İstanbul",
                mac_encoding::Encoding::from_id("turkish")
                    .unwrap()
                    .encode("İstanbul")
                    .unwrap(),
            ),
            (
                &["mac-iceland"],
                "Þingvellir",
                mac_encoding::Encoding::from_id("icelandic")
                    .unwrap()
                    .encode("Þingvellir")
                    .unwrap(),
            ),
        ];
        let mut wrong = Vec::new();
        for (labels, text, bytes) in &cases {
            for label in *labels {
                let d = doc(label, bytes);
                let decoded = decode(&d, None);
                if title_of(&decoded) != *text {
                    wrong.push(format!("{label}: {:?} for {text:?}", title_of(&decoded)));
                }
                // The same label from the server, with no declaration.
                let mut plain = b"<rss><channel><title>".to_vec();
                plain.extend_from_slice(bytes);
                plain.extend_from_slice(b"</title></channel></rss>");
                let ct = format!("application/rss+xml; charset={label}");
                let decoded = decode(&plain, Some(&ct));
                if title_of(&decoded) != *text {
                    wrong.push(format!(
                        "http {label}: {:?} for {text:?}",
                        title_of(&decoded)
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn utf32_with_and_without_bom() {
        let text = "<rss><channel><title>Zürich 🎉</title></channel></rss>";
        for little_endian in [true, false] {
            let units: Vec<u8> = text
                .chars()
                .flat_map(|c| {
                    if little_endian {
                        (c as u32).to_le_bytes()
                    } else {
                        (c as u32).to_be_bytes()
                    }
                })
                .collect();
            let bom: &[u8] = if little_endian {
                &[0xFF, 0xFE, 0, 0]
            } else {
                &[0, 0, 0xFE, 0xFF]
            };
            let with_bom = [bom, &units].concat();
            assert_eq!(title_of(&decode(&with_bom, None)), "Zürich 🎉");
            assert_eq!(title_of(&decode(&units, None)), "Zürich 🎉");
        }
    }

    #[test]
    fn unknown_labels_are_sniffed_not_read_as_windows_1252() {
        // Cyrillic text in windows-1251 under a label nobody knows.
        let text = "Правозащитники в Москве требуют освобождения задержанных активистов";
        let bytes = encoding_rs::WINDOWS_1251.encode(text).0;
        for label in ["x-unknown-charset", "cp-nonsense", "koi8-zz"] {
            let d = doc(label, &bytes);
            let decoded = decode(&d, None);
            assert_eq!(title_of(&decoded), text, "{label}");
        }
        // Undeclared and invalid UTF-8: sniffed too.
        let mut plain = b"<rss><channel><title>".to_vec();
        plain.extend_from_slice(&bytes);
        plain.extend_from_slice(b"</title></channel></rss>");
        assert_eq!(title_of(&decode(&plain, None)), text);
        // A server claiming UTF-8 for such bytes is not believed.
        assert_eq!(
            title_of(&decode(&plain, Some("text/xml; charset=utf-8"))),
            text
        );
    }

    #[test]
    fn labels_resolve_to_charsets() {
        assert_eq!(
            for_label("windows_1251"),
            Some(Charset::Whatwg(encoding_rs::WINDOWS_1251))
        );
        assert_eq!(for_label("cp437"), Some(Charset::Dos(437)));
        assert_eq!(for_label("IBM850"), Some(Charset::Dos(850)));
        assert_eq!(
            for_label("latin5"),
            Some(Charset::Whatwg(encoding_rs::WINDOWS_1254))
        );
        assert_eq!(
            for_label("utf_32_le"),
            Some(Charset::Utf32 {
                little_endian: true
            })
        );
        assert_eq!(for_label("koi8-t"), None);
        assert_eq!(for_label("nonsense"), None);
        assert_eq!(for_label(""), None);
    }
}
