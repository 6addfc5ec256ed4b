//! A request body as the SDKs send it, to JSON text: gzip (by `Content-Encoding`, posthog-js's
//! `compression=gzip-js` query parameter, or gzip's magic bytes), form bodies with a `data=`
//! field (posthog-js: base64 or plain JSON), or JSON. Decompression stops at a size limit, so
//! a small compressed body cannot expand without bound. [`json`] then reads the text into a
//! tree that borrows from it.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine as _;

use crate::message::{Json, Problem};

/// Why a body could not be read: too large once decompressed, or not in a known shape.
#[derive(Debug)]
pub enum BodyError {
    TooLarge(usize),
    Invalid(Problem),
}

pub struct BodyShape<'a> {
    pub content_encoding: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The `compression` query parameter (posthog-js).
    pub compression: Option<&'a str>,
}

/// The JSON text a body carries (the body itself when it is plain JSON).
pub fn decode<'b>(bytes: &'b [u8], shape: &BodyShape, max_bytes: usize) -> Result<Cow<'b, [u8]>, BodyError> {
    let gzipped = shape.content_encoding.is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
        || shape.compression.is_some_and(|c| c.starts_with("gzip"))
        || bytes.starts_with(&[0x1f, 0x8b]);
    let bytes = if gzipped { Cow::Owned(gunzip(bytes, max_bytes)?) } else { Cow::Borrowed(bytes) };
    if shape.compression == Some("lz64") {
        return Err(invalid("compression", "lz64 bodies are not accepted; send gzip-js or base64"));
    }
    // `curl -d '{…}'` labels JSON as a form: a body that starts as JSON is JSON.
    let looks_like_json = bytes.trim_ascii_start().first().is_some_and(|b| matches!(b, b'{' | b'['));
    let form = !looks_like_json
        && (shape.content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
            || bytes.starts_with(b"data="));
    if form {
        return form_body(&bytes, shape.compression, max_bytes).map(Cow::Owned);
    }
    Ok(bytes)
}

fn form_body(bytes: &[u8], compression: Option<&str>, max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    let mut data = None;
    let mut compression = compression.map(str::to_string);
    for (key, value) in form_urlencoded::parse(bytes) {
        match key.as_ref() {
            "data" => data = Some(value.into_owned()),
            "compression" => compression = Some(value.into_owned()),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| invalid("data", "a form body must carry the events in its data field"))?;
    let trimmed = data.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|e| invalid("data", format!("is neither JSON nor base64 ({e})")))?;
    if compression.as_deref().is_some_and(|c| c.starts_with("gzip")) || decoded.starts_with(&[0x1f, 0x8b]) {
        return gunzip(&decoded, max_bytes);
    }
    Ok(decoded)
}

fn gunzip(bytes: &[u8], max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let read = flate2::read::MultiGzDecoder::new(bytes)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid("body", format!("is not valid gzip ({e})")))?;
    if read > max_bytes {
        return Err(BodyError::TooLarge(max_bytes));
    }
    Ok(out)
}

/// The JSON of a decoded body, or a problem naming where it stops being JSON.
pub fn json(text: &[u8]) -> Result<Json<'_>, BodyError> {
    serde_json::from_slice(text)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e} (line {}, column {})", e.line(), e.column())))
}

fn invalid(field: &str, message: impl Into<String>) -> BodyError {
    BodyError::Invalid(Problem::request(field, message))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    const PLAIN: BodyShape = BodyShape { content_encoding: None, content_type: None, compression: None };

    #[test]
    fn every_shape_the_sdks_send_decodes_to_the_same_json() {
        let event = br#"{"event":"e","distinct_id":"u"}"#;
        let expected: Json = serde_json::from_slice(event).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(event);
        let gz_b64 = base64::engine::general_purpose::STANDARD.encode(gzip(event));
        let form =
            |data: &str| format!("data={}", form_urlencoded::byte_serialize(data.as_bytes()).collect::<String>());
        let gzip_js = BodyShape { compression: Some("gzip-js"), ..PLAIN };
        let encoded = BodyShape { content_encoding: Some("gzip"), ..PLAIN };
        let form_type = BodyShape { content_type: Some("application/x-www-form-urlencoded"), ..PLAIN };
        let cases: Vec<(Vec<u8>, &BodyShape)> = vec![
            (event.to_vec(), &PLAIN),
            (gzip(event), &encoded),
            (gzip(event), &gzip_js),
            (gzip(event), &PLAIN),
            (form(&b64).into_bytes(), &form_type),
            (form(std::str::from_utf8(event).unwrap()).into_bytes(), &PLAIN),
            (format!("{}&compression=gzip-js", form(&gz_b64)).into_bytes(), &PLAIN),
            (event.to_vec(), &form_type),
        ];
        for (i, (bytes, shape)) in cases.iter().enumerate() {
            assert_eq!(json(&decode(bytes, shape, 1 << 20).unwrap()).unwrap(), expected, "case {i}");
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_and_bad_bodies_are_named() {
        let bomb = gzip(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(decode(&bomb, &PLAIN, 1 << 20), Err(BodyError::TooLarge(_))));
        let Err(BodyError::Invalid(problem)) = json(&decode(b"{\"event\": ", &PLAIN, 1 << 20).unwrap()) else {
            panic!()
        };
        assert!(problem.message.contains("line 1, column 10"), "{}", problem.message);
        let Err(BodyError::Invalid(problem)) = decode(b"data=%%%", &PLAIN, 1 << 20) else { panic!() };
        assert_eq!(problem.field, "data");
    }
}
