//! Request signatures of the GPU clouds, shared by their adapters so each algorithm is written
//! once and checked once against the provider's published example:
//!
//! - [`acs1`]: Alibaba Cloud's RPC signature V1 (HMAC-SHA1 over the sorted query), the fallback
//!   for endpoints without V3;
//! - [`acs3`]: Alibaba Cloud's V3, `ACS3-HMAC-SHA256`, over a canonical request;
//! - [`tc3`]: Tencent Cloud's API 3.0 signature, `TC3-HMAC-SHA256`, with keys derived per date and
//!   service.
//!
//! The two canonical requests have one shape ([`canonical_request`]). Keys and timestamps are
//! arguments, never read here, so the tests can hold them fixed.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Percent-encoding as RFC 3986 has it, which both clouds ask for: every byte but
/// `A-Z a-z 0-9 - _ . ~` as `%XX` in upper case (so a space is `%20`, never `+`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `params` sorted by name and joined as `name=value&…`, each part percent-encoded.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (percent_encode(k), percent_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 decoded (padding optional, whitespace skipped); `None` for anything else.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// `timestamp` (Unix seconds) as ISO 8601 in UTC, `2023-10-26T10:22:32Z`, as the clouds' date
/// headers and parameters want it.
pub fn utc(timestamp: u64) -> String {
    let days = i64::try_from(timestamp / 86_400).unwrap_or(i64::MAX);
    let rest = timestamp % 86_400;
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// A canonical request as ACS3 and TC3 both define it: the method, the path, the canonical query,
/// each signed header as `name:value` on its own line (names in lower case, sorted, values
/// trimmed), the signed names joined by `;`, and the payload's SHA-256. Returns the request and
/// the signed names.
pub fn canonical_request(method: &str, path: &str, query: &str, headers: &[(&str, &str)], payload: &[u8]) -> (String, String) {
    let mut lines: Vec<(String, &str)> = headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim())).collect();
    lines.sort();
    let canonical: String = lines.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = lines.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    (format!("{method}\n{path}\n{query}\n{canonical}\n{signed}\n{}", sha256_hex(payload)), signed)
}

/// Alibaba Cloud's signature V1 for RPC APIs.
pub mod acs1 {
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    /// The `Signature` parameter for a request by `method` with `params` (every parameter but
    /// `Signature` itself, `AccessKeyId` included): HMAC-SHA1 keyed by `secret&` over
    /// `METHOD&%2F&` and the canonical query, itself percent-encoded again.
    pub fn signature(method: &str, params: &[(&str, &str)], secret: &str) -> String {
        let to_sign = format!("{method}&{}&{}", super::percent_encode("/"), super::percent_encode(&super::canonical_query(params)));
        let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes a key of any length");
        mac.update(to_sign.as_bytes());
        super::base64(&mac.finalize().into_bytes())
    }
}

/// Alibaba Cloud's signature V3, `ACS3-HMAC-SHA256`.
pub mod acs3 {
    pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

    /// A request to sign. `headers` are those to sign besides `host` and
    /// `x-acs-content-sha256`, which are added: `x-acs-action`, `x-acs-version`, `x-acs-date`,
    /// `x-acs-signature-nonce`, and `content-type` where there is a body.
    pub struct Request<'a> {
        pub method: &'a str,
        pub host: &'a str,
        pub path: &'a str,
        pub query: &'a [(&'a str, &'a str)],
        pub headers: &'a [(&'a str, &'a str)],
        pub body: &'a [u8],
    }

    /// What a signed request carries: the headers to send (`host` is the URL's), the canonical
    /// request, and its signature.
    pub struct Signed {
        pub headers: Vec<(String, String)>,
        pub canonical_request: String,
        pub signature: String,
    }

    pub fn sign(request: &Request, key_id: &str, secret: &str) -> Signed {
        let payload_hash = super::sha256_hex(request.body);
        let mut headers: Vec<(&str, &str)> = vec![("host", request.host), ("x-acs-content-sha256", &payload_hash)];
        headers.extend(request.headers.iter().copied());
        let (canonical, signed_names) = super::canonical_request(request.method, request.path, &super::canonical_query(request.query), &headers, request.body);
        let to_sign = format!("{ALGORITHM}\n{}", super::sha256_hex(canonical.as_bytes()));
        let signature = super::hex(&super::hmac_sha256(secret.as_bytes(), to_sign.as_bytes()));
        let authorization = format!("{ALGORITHM} Credential={key_id},SignedHeaders={signed_names},Signature={signature}");
        let mut out: Vec<(String, String)> = headers.iter().filter(|(n, _)| *n != "host").map(|(n, v)| (n.to_string(), v.to_string())).collect();
        out.push(("Authorization".into(), authorization));
        Signed { headers: out, canonical_request: canonical, signature }
    }
}

/// Tencent Cloud's API 3.0 signature, `TC3-HMAC-SHA256`.
pub mod tc3 {
    pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

    /// A POST of a JSON `payload` to `host`'s `/` (the only form the adapters send), for
    /// `service` (the host's first label: `cvm`, `tke`) at `timestamp` (Unix seconds), with
    /// `headers` to sign besides `content-type` and `host` (the published example signs those
    /// two alone; newer examples add `x-tc-action`).
    pub struct Request<'a> {
        pub host: &'a str,
        pub service: &'a str,
        pub content_type: &'a str,
        pub headers: &'a [(&'a str, &'a str)],
        pub payload: &'a [u8],
        pub timestamp: u64,
    }

    pub struct Signed {
        pub authorization: String,
        pub canonical_request: String,
        pub signature: String,
    }

    /// The UTC date of `timestamp` as `YYYY-MM-DD`, which scopes the derived key.
    pub fn date(timestamp: u64) -> String {
        super::utc(timestamp)[..10].to_string()
    }

    pub fn sign(request: &Request, secret_id: &str, secret_key: &str) -> Signed {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", request.content_type), ("host", request.host)];
        headers.extend(request.headers.iter().copied());
        let (canonical, signed_names) = super::canonical_request("POST", "/", "", &headers, request.payload);
        let date = date(request.timestamp);
        let scope = format!("{date}/{}/tc3_request", request.service);
        let to_sign = format!("{ALGORITHM}\n{}\n{scope}\n{}", request.timestamp, super::sha256_hex(canonical.as_bytes()));
        let key = [date.as_str(), request.service, "tc3_request"].iter().fold(format!("TC3{secret_key}").into_bytes(), |key, part| super::hmac_sha256(&key, part.as_bytes()));
        let signature = super::hex(&super::hmac_sha256(&key, to_sign.as_bytes()));
        let authorization = format!("{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_names}, Signature={signature}");
        Signed { authorization, canonical_request: canonical, signature }
    }
}

#[cfg(test)]
mod tests {
    //! Each cloud's own worked example, from its signing documentation, reproduced exactly.

    use super::{acs1, acs3, base64, percent_encode, sha256_hex, tc3};

    #[test]
    fn percent_encoding_and_base64_are_the_standard_ones() {
        assert_eq!(percent_encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
        assert_eq!([base64(b""), base64(b"f"), base64(b"fo"), base64(b"foo"), base64(b"foob")], ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="]);
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar\n\u{e9}"] {
            assert_eq!(super::unbase64(&base64(text.as_bytes())).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(super::unbase64("Zm9v\nYg=="), Some(b"foob".to_vec()));
        assert_eq!(super::unbase64("Zm9v!"), None);
    }

    fn describe_regions(access_key: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", access_key),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
    }

    #[test]
    fn alibaba_v1_signs_describe_regions_as_its_documentation_does() {
        assert_eq!(acs1::signature("GET", &describe_regions("testid"), "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert_eq!(acs1::signature("POST", &describe_regions("testid"), "testsecret"), "MxbnVAM4w6sft9xjVpe/GCKueuk=");
        assert_ne!(acs1::signature("GET", &describe_regions("otherid"), "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn alibaba_v3_signs_run_instances_as_its_documentation_does() {
        let request = acs3::Request {
            method: "POST",
            host: "ecs.cn-shanghai.aliyuncs.com",
            path: "/",
            query: &[("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"), ("RegionId", "cn-shanghai")],
            headers: &[("x-acs-action", "RunInstances"), ("x-acs-version", "2014-05-26"), ("x-acs-date", "2023-10-26T10:22:32Z"), ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d")],
            body: b"",
        };
        let signed = acs3::sign(&request, "YourAccessKeyId", "YourAccessKeySecret");
        assert_eq!(sha256_hex(signed.canonical_request.as_bytes()), "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259");
        assert_eq!(signed.signature, "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
        let authorization = signed.headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| v.as_str());
        assert_eq!(authorization, Some("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"));
    }

    #[test]
    fn tencent_tc3_signs_describe_instances_as_its_documentation_does() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let request = tc3::Request { host: "cvm.tencentcloudapi.com", service: "cvm", content_type: "application/json; charset=utf-8", headers: &[], payload, timestamp: 1_551_113_065 };
        let signed = tc3::sign(&request, "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE");
        assert_eq!(sha256_hex(signed.canonical_request.as_bytes()), "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031");
        assert_eq!(signed.signature, "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
        assert_eq!(tc3::date(1_551_113_065), "2019-02-25");
        assert_eq!(super::utc(1_698_315_752), "2023-10-26T10:22:32Z", "the V3 example's x-acs-date");
        assert!(signed.authorization.starts_with("TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e4"), "{}", signed.authorization);
    }
}
