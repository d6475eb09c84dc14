//! HTTP/1.1 as the CLI speaks it: one request per connection (`Connection: close`), an answer
//! whose head is a status line and `name: value` lines, and whose body is framed by
//! `Content-Length`, by chunks, or by the end of the connection. Errors are `std::io::Error`s,
//! so a timeout reads as one wherever it happens.
//!
//! The head is read here rather than by `httparse`: its first call detects the CPU's vector
//! features, and in a virtual machine each of those CPUID instructions traps to the hypervisor
//! (3.7 µs apiece measured here, some 50 µs per `gantry submit`) to parse a dozen short lines.

use std::io::{BufRead, BufReader, Error, ErrorKind, Read};

/// An answer's head may be no longer than this.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// A chunk-size line (hex digits and extensions) may be no longer than this.
const MAX_CHUNK_LINE: u64 = 1024;

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidData, message.into())
}

/// The bytes of one request. The method and the path must be plain tokens: a space or a line
/// break in either would make another request of it.
pub fn request(method: &str, path: &str, host: &str, authorization: Option<&str>, body: Option<&[u8]>) -> Result<Vec<u8>, Error> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Error::new(ErrorKind::InvalidInput, format!("{method:?} is not an HTTP method")));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::new(ErrorKind::InvalidInput, format!("{path:?} is not a path (it starts with / and has no spaces)")));
    }
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    if let Some(value) = authorization {
        head.push_str(&format!("authorization: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    Ok(bytes)
}

/// A header's name and its value, without the blanks around it.
type Header<'a> = (&'a [u8], &'a [u8]);

/// The status and the headers of a head that ends in its blank line. A line that is neither a
/// header nor the end, a header name that is not a token, or a status that is not three digits
/// makes the answer invalid.
fn parse_head(head: &[u8]) -> Result<(u16, Vec<Header<'_>>), Error> {
    let not_http = || invalid(format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&head[..head.len().min(80)])));
    let mut lines = head.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next().ok_or_else(not_http)?;
    let rest = status_line.strip_prefix(b"HTTP/1.").filter(|r| r.first().is_some_and(u8::is_ascii_digit)).ok_or_else(not_http)?;
    let code = match rest.get(1..) {
        Some([b' ', a, b, c]) | Some([b' ', a, b, c, b' ', ..]) if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(not_http()),
    };
    let is_token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut headers = Vec::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        let colon = line.iter().position(|&b| b == b':').ok_or_else(not_http)?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(is_token) || headers.len() == MAX_HEADERS {
            return Err(not_http());
        }
        headers.push((name, value));
    }
    Ok((code, headers))
}

/// An answer whose head has been read.
pub struct Answer<C> {
    pub status: u16,
    framing: Framing,
    reader: BufReader<C>,
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

impl<C: Read> Answer<C> {
    pub fn read(connection: C) -> Result<Answer<C>, Error> {
        let mut reader = BufReader::new(connection);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let before = head.len();
            (&mut reader).take((MAX_HEAD - head.len()) as u64).read_until(b'\n', &mut head)?;
            if head.len() == before {
                return Err(if head.len() >= MAX_HEAD { invalid("the answer's head is too long") } else { Error::new(ErrorKind::UnexpectedEof, "the connection closed before an answer") });
            }
        }
        let (status, headers) = parse_head(&head)?;
        let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase());
        let framing = if header("transfer-encoding").is_some_and(|t| t.ends_with("chunked")) {
            Framing::Chunked
        } else if let Some(length) = header("content-length") {
            Framing::Length(length.parse().map_err(|_| invalid(format!("content-length {length:?} is not a number")))?)
        } else {
            Framing::UntilClose
        };
        Ok(Answer { status, framing, reader })
    }

    /// The body, as it arrives.
    pub fn into_body(self) -> Body<C> {
        let left = match self.framing {
            Framing::Length(n) => Left::Bytes(n),
            Framing::Chunked => Left::ChunkHead,
            Framing::UntilClose => Left::UntilClose,
        };
        Body { reader: self.reader, left, chunked: matches!(self.framing, Framing::Chunked) }
    }
}

pub struct Body<C> {
    reader: BufReader<C>,
    left: Left,
    chunked: bool,
}

enum Left {
    /// This many bytes of the body, or of the current chunk.
    Bytes(u64),
    /// A chunk's size line comes next.
    ChunkHead,
    UntilClose,
    Done,
}

impl<C: Read> Body<C> {
    fn line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        (&mut self.reader).take(MAX_CHUNK_LINE).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(if line.is_empty() { Error::new(ErrorKind::UnexpectedEof, "the answer ended inside its body") } else { invalid("a chunk-size line is too long") });
        }
        Ok(String::from_utf8_lossy(&line).trim().to_string())
    }

    /// Reads the size line of the next chunk; the last (size 0) and its trailers end the body.
    fn next_chunk(&mut self) -> Result<(), Error> {
        let line = self.line()?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid(format!("{line:?} is not a chunk size")))?;
        if size > 0 {
            self.left = Left::Bytes(size);
            return Ok(());
        }
        while !self.line()?.is_empty() {}
        self.left = Left::Done;
        Ok(())
    }
}

impl<C: Read> Read for Body<C> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.left {
                Left::Done => return Ok(0),
                Left::UntilClose => return self.reader.read(buf),
                Left::ChunkHead => self.next_chunk()?,
                Left::Bytes(0) if !self.chunked => self.left = Left::Done,
                Left::Bytes(0) => {
                    if !self.line()?.is_empty() {
                        return Err(invalid("a chunk longer than its size"));
                    }
                    self.left = Left::ChunkHead;
                }
                Left::Bytes(n) => {
                    let wanted = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let got = self.reader.read(&mut buf[..wanted])?;
                    if got == 0 && wanted > 0 {
                        return Err(Error::new(ErrorKind::UnexpectedEof, "the answer ended inside its body"));
                    }
                    self.left = Left::Bytes(n - got as u64);
                    return Ok(got);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(answer: &[u8]) -> Result<(u16, Vec<u8>), Error> {
        let answer = Answer::read(answer)?;
        let status = answer.status;
        let mut bytes = Vec::new();
        answer.into_body().read_to_end(&mut bytes)?;
        Ok((status, bytes))
    }

    #[test]
    fn bodies_framed_by_length_by_chunks_and_by_the_end_of_the_connection() {
        let by_length = body(b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello and what follows").expect("read");
        assert_eq!(by_length, (201, b"hello".to_vec()), "no more than content-length");
        let chunked = body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\ntrailer: x\r\n\r\n").expect("read");
        assert_eq!(chunked, (200, b"hello, world".to_vec()));
        let bare = body(b"HTTP/1.0 204\r\nContent-Length:0\r\n\r\n").expect("a status line without a reason, a header without a blank");
        assert_eq!(bare, (204, Vec::new()));
        let until_close = body(b"HTTP/1.1 404 Not Found\r\n\r\n{\"detail\":\"no\"}").expect("read");
        assert_eq!(until_close, (404, b"{\"detail\":\"no\"}".to_vec()));
    }

    #[test]
    fn cut_or_malformed_answers_are_errors_not_short_bodies() {
        for (answer, kind) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"[..], ErrorKind::UnexpectedEof),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel", ErrorKind::UnexpectedEof),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n", ErrorKind::InvalidData),
            (b"SMTP ready\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 20 OK\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/2 200 OK\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\n: nameless\r\n\r\n", ErrorKind::InvalidData),
            (b"HTTP/1.1 200 OK\r\n", ErrorKind::UnexpectedEof),
        ] {
            let error = body(answer).expect_err("refused");
            assert_eq!(error.kind(), kind, "{}: {error}", String::from_utf8_lossy(answer));
        }
        let many = [b"HTTP/1.1 200 OK\r\n".to_vec(), b"x: y\r\n".repeat(MAX_HEADERS + 1), b"\r\n".to_vec()].concat();
        assert_eq!(body(&many).expect_err("refused").kind(), ErrorKind::InvalidData, "no more than {MAX_HEADERS} headers");
        let endless = [b"HTTP/1.1 200 OK\r\nx: ".to_vec(), vec![b'a'; MAX_HEAD]].concat();
        assert_eq!(body(&endless).expect_err("refused").kind(), ErrorKind::InvalidData, "a head without end is cut off");
    }

    #[test]
    fn a_request_cannot_be_made_into_two() {
        let bytes = request("POST", "/api/v1/jobs", "localhost", Some("Bearer t"), Some(b"{}")).expect("request");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.starts_with("POST /api/v1/jobs HTTP/1.1\r\n") && text.contains("\r\ncontent-length: 2\r\n") && text.ends_with("\r\n\r\n{}"), "{text}");
        assert!(text.contains("authorization: Bearer t\r\n") && text.contains("connection: close\r\n"), "{text}");
        for (method, path) in [("GET", "/a b"), ("GET", "/a\r\nx: y"), ("GET", "relative"), ("GE T", "/"), ("", "/")] {
            let error = request(method, path, "localhost", None, None).expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{method:?} {path:?}");
        }
    }
}
